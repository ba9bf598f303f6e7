"""ResNet-50 as a neuron-workload preset: compute mode against numpy, its parameter count against
torchvision's, the spec and the in-process estimate."""

from __future__ import annotations

import pytest

from neurontools.client import Session
from neurontools.workloads import catalog
from neurontools.workloads.resnet import VISION, VisionShape
from neurontools.workloads.runner import WorkloadRunner
from neurontools.workloads.summary import workload_summary
from neurontools.workloads.vision_workload import VisionWorkload


@pytest.mark.slow
def test_resnet_50_on_small_images_matches_numpy(address):
    """All 53 convolutions, the pools and the classifier on two cores, float32, 32 x 32 images."""
    workload = VisionWorkload(VISION["resnet-50"], [4, 5], batch=2, image_size=32, dtype="float32", compute=True)
    with Session(address, visible_cores="4,5") as session:
        replica = workload.replica(workload.groups[0])
        replica.load(session)
        try:
            error, scale = replica.verify()
        finally:
            replica.close()
    assert scale > 0 and error <= 1e-4 * scale


def test_parameter_count_is_torchvisions_with_batch_norm_folded():
    # torchvision's resnet50 has 25,557,032 parameters, 2 x 26,560 of them batch-norm scales and shifts
    # (26,560 normalized channels); folding them into the convolutions leaves one bias per channel.
    assert VISION["resnet-50"].parameters() == 25_557_032 - 26_560


def test_feature_map_sizes_halve_four_times_after_the_stem():
    shape = VisionShape(VISION["resnet-50"], 1, 224)
    sizes = shape.sizes()
    assert (sizes[0], sizes[3], sizes[7], sizes[13], sizes[16]) == (56, 56, 28, 14, 7)
    assert shape.workspace("head")["a16"] == (1, 2048, 7, 7)


def test_spec_and_estimate():
    from neurontools.workloads.estimate import estimate
    spec = catalog.parse_spec("resnet-50:batch=8,image=64", catalog.Settings())
    assert (spec.settings.batch, spec.settings.image) == (8, 64)
    with pytest.raises(catalog.SpecError, match="layers applies to transformer presets"):
        catalog.architecture(catalog.parse_spec("resnet-50:layers=2", catalog.Settings()))
    workload = VisionWorkload(VISION["resnet-50"], [0], batch=1, image_size=64)
    modeled = estimate(workload, "inf2.xlarge").request
    assert modeled.seconds["fixed"] == pytest.approx(workload.overhead_seconds())
    assert modeled.total > modeled.seconds["fixed"] and modeled.seconds["collectives"] == 0


def test_runs_through_the_workload_runner_in_timing_only_mode(address):
    workload = VisionWorkload(VISION["resnet-50"], [6], batch=1, image_size=64)
    runner = WorkloadRunner(address)
    name = runner.add(workload, limit=1)
    runner.start(name)
    assert runner.wait(name, timeout=120)
    run = runner.runs[name]
    summary = workload_summary(name, run)
    assert run.error is None and summary["requests_by_status"] == {"ok": 1} and summary["executions"] == 18
    assert run.memory == workload.memory_plan().per_category()
