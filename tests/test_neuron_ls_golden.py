"""neuron-ls output, byte for byte: against the reference's verbatim captures and our reviewed goldens.

tests/golden/neuron-ls/reference/  copied verbatim from ../shared/reference/neuron-tools.md (never
                                   regenerated; see the README there for the source of each file)
tests/golden/neuron-ls/generated/  rendered by neuron-ls from the daemon's topology catalog, reviewed by
                                   hand; regenerate with NEURON_LS_UPDATE_GOLDENS=1 after a deliberate change
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.device import topology as topo
from neurontools.ls.cli import fatal_line, render_output
from neurontools.ls.options import parse_options

GOLDEN = Path(__file__).parent / "golden" / "neuron-ls"
REFERENCE = GOLDEN / "reference"
GENERATED = GOLDEN / "generated"
UPDATE = os.environ.get("NEURON_LS_UPDATE_GOLDENS") == "1"

# Instance ids of the reference's captures, so generated and verbatim outputs line up.
INSTANCE_IDS = {
    "inf2.xlarge": "i-123456abcd00",
    "inf2.8xlarge": "i-087c44c67ae0a135f",
    "inf2.24xlarge": "i-00a9f3ecb6d998968",
    "inf2.48xlarge": "i-0843f604e49a05017",
    "trn1.2xlarge": "i-0abc1234def56789",
    "trn1.32xlarge": "i-0633517e496256bf8",
}
MODES = {
    "default": [],
    "wide": ["--wide"],
    "show-all-procs": ["--show-all-procs"],
    "topology": ["--topology"],
    "json": ["--json-output"],
}
NEURON_LS_PID = 269192  # the neuron-ls call itself, an observer of every device


def snapshot_for(instance_type: str, instance_id: str, *, sessions: Sequence[pb.SessionInfo] = (),
                 observers: Sequence[pb.Observer] = ()) -> pb.Snapshot:
    instance = pb.InstanceInfo(instance_type=instance_type, instance_id=instance_id)
    topology = topo.to_proto(topo.lookup(instance_type), instance)
    return pb.Snapshot(topology=topology, sessions=sessions, observers=observers)


def render(snapshot: pb.Snapshot, flags: list[str]) -> str:
    return render_output(snapshot, parse_options(flags))


def self_observer(flags: list[str]) -> pb.Observer:
    return pb.Observer(pid=NEURON_LS_PID, command=" ".join(["neuron-ls", *flags]))


def busy_sessions() -> list[pb.SessionInfo]:
    """Two processes sharing device 0, one spanning devices 2-5 with a command longer than 80."""
    return [
        pb.SessionInfo(pid=2199, command="/opt/aws_neuronx_venv_pytorch_2_8/bin/python /tmp/load.py",
                       runtime_version="2.30.51", core_ids=[0]),
        pb.SessionInfo(pid=2310, command="python serve.py --port 8000", runtime_version="2.30.51",
                       core_ids=[1]),
        pb.SessionInfo(pid=3051, command="/opt/aws_neuronx_venv_pytorch_2_8/bin/torchrun --nproc-per-node 8 "
                       "run_llama.py --model-id meta-llama/Meta-Llama-3-8B --tensor-parallel-size 8",
                       runtime_version="2.30.51", core_ids=list(range(4, 12))),
    ]


def busy_observers(flags: list[str]) -> list[pb.Observer]:
    return [pb.Observer(pid=1187, command="neuron-monitor -c /etc/neuron-monitor.json"),
            pb.Observer(pid=5120, command="neuron-top"), self_observer(flags)]


def _scenarios() -> dict[str, tuple[pb.Snapshot, list[str]]]:
    """golden file name -> (snapshot, flags)"""
    out = {}
    for instance_type, instance_id in INSTANCE_IDS.items():
        for mode, flags in MODES.items():
            snapshot = snapshot_for(instance_type, instance_id, observers=[self_observer(flags)])
            out[f"{instance_type}/idle-{mode}"] = (snapshot, flags)
    busy = {**MODES, "show-all-procs-wide": ["--show-all-procs", "--wide"]}
    for mode, flags in busy.items():
        snapshot = snapshot_for("inf2.48xlarge", INSTANCE_IDS["inf2.48xlarge"], sessions=busy_sessions(),
                                observers=busy_observers(flags))
        out[f"inf2.48xlarge/busy-{mode}"] = (snapshot, flags)
    return out


SCENARIOS = _scenarios()


def _golden_path(name: str, flags: list[str]) -> Path:
    return GENERATED / (name + (".json" if "--json-output" in flags else ".txt"))


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_generated_golden(name: str) -> None:
    snapshot, flags = SCENARIOS[name]
    output = render(snapshot, flags).encode("utf-8")
    path = _golden_path(name, flags)
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(output)
    assert output == path.read_bytes(), f"{path} differs; NEURON_LS_UPDATE_GOLDENS=1 regenerates it"


def test_every_generated_golden_has_a_scenario() -> None:
    expected = {_golden_path(name, flags) for name, (_, flags) in SCENARIOS.items()}
    assert set(GENERATED.glob("*/*.*")) == expected


# ------------------------------------------------------------------------------------------------
# Verbatim reference captures
# ------------------------------------------------------------------------------------------------

def reference(name: str) -> str:
    return (REFERENCE / name).read_bytes().decode("utf-8")


@pytest.mark.parametrize(("instance_type", "file"), [
    ("inf2.24xlarge", "inf2.24xlarge-default.txt"),
    ("inf2.48xlarge", "inf2.48xlarge-default.txt"),
    ("trn1.2xlarge", "trn1.2xlarge-default.txt"),
])
def test_idle_default_matches_reference_capture(instance_type: str, file: str) -> None:
    snapshot = snapshot_for(instance_type, INSTANCE_IDS[instance_type], observers=[self_observer([])])
    assert render(snapshot, []) == reference(file)


def test_inf2_48xlarge_matches_the_real_excerpt_rows_0_to_7() -> None:
    # the completed inf2.48xlarge table has derived rows 8-11; the real capture stops at "| 8"
    snapshot = snapshot_for("inf2.48xlarge", INSTANCE_IDS["inf2.48xlarge"])
    assert render(snapshot, []).startswith(reference("inf2.48xlarge-default-excerpt.txt"))


def test_inf2_xlarge_idle_matches_reference_capture() -> None:
    snapshot = snapshot_for("inf2.xlarge", "<REDACTED-INSTANCE-ID>")
    assert render(snapshot, []) == reference("inf2.xlarge-default.txt")


def test_inf2_xlarge_with_a_runtime_process_matches_workshop_capture() -> None:
    session = pb.SessionInfo(pid=4290, command="python3 -m vllm.entrypoints.openai.api_server",
                             runtime_version="2.28.23", core_ids=[0, 1])
    snapshot = snapshot_for("inf2.xlarge", "i-123456abcd00", sessions=[session])
    assert render(snapshot, []) == reference("inf2.xlarge-default-with-process.txt")


def test_inf2_xlarge_json_matches_reference_capture() -> None:
    session = pb.SessionInfo(pid=2199, command="/opt/aws_neuronx_venv_pytorch_2_8/bin/python /tmp/load.py",
                             runtime_version="2.30.51", core_ids=[0, 1])
    snapshot = snapshot_for("inf2.xlarge", "i-123456abcd00", sessions=[session])
    assert render(snapshot, ["-j"]) == reference("inf2.xlarge.json")


def _split_at_drawing(text: str) -> tuple[str, str]:
    at = text.index("Neuron Device Topology")
    return text[:at], text[at:]


def test_trn1_32xlarge_topology_table_matches_reference() -> None:
    output = render(snapshot_for("trn1.32xlarge", INSTANCE_IDS["trn1.32xlarge"]), ["--topology"])
    header_and_table, _ = _split_at_drawing(reference("trn1.32xlarge-topology.txt"))
    assert output.startswith(header_and_table)


def test_trn1_32xlarge_drawing_is_the_docs_torus_in_the_current_layout() -> None:
    output = render(snapshot_for("trn1.32xlarge", INSTANCE_IDS["trn1.32xlarge"]), ["--topology"])
    _, drawing = _split_at_drawing(output)
    for older in ("trn1.32xlarge-topology.txt", "trn1.32xlarge-topology-sdk2.8.txt"):
        # the trn1 docs predate the legend and do not pad lines to the row width
        expected = _split_at_drawing(reference(older))[1].splitlines()
        assert [line.rstrip() for line in drawing.splitlines()][:len(expected)] == expected
    # the current docs' (trn2, same 4x4 torus) layout: two blank lines after the table, padding, legend
    assert output.endswith("+\n\n\n" + drawing)
    assert drawing == _split_at_drawing(reference("trn2n.48xlarge-topology.txt"))[1]


@pytest.mark.parametrize(("instance_type", "file"), [
    ("inf2.24xlarge", "inf2.24xlarge-topology-drawing-inferred.txt"),
    ("inf2.48xlarge", "inf2.48xlarge-topology-drawing-inferred.txt"),
])
def test_inf2_topology_drawings_follow_the_reference_sketch(instance_type: str, file: str) -> None:
    # the reference sketch is indented by two spaces inside its block
    sketch = "".join(line.removeprefix("  ") for line in reference(file).splitlines(keepends=True))
    output = render(snapshot_for(instance_type, INSTANCE_IDS[instance_type]), ["-t"])
    assert output.endswith("+\n\n\n" + sketch)


def test_single_device_topology_is_the_table_alone() -> None:
    output = render(snapshot_for("inf2.xlarge", INSTANCE_IDS["inf2.xlarge"]), ["-t"])
    assert output.endswith("+\n") and "Topology" not in output


def test_fatal_line_matches_the_real_no_driver_error() -> None:
    error = ("Unable to read device information from the driver. Make sure aws-neuronx-dkms is installed "
             "and the neuron driver is accessible.")
    assert fatal_line("Failed to discover neuron devices", error, 0.4) == reference("no-driver-error.txt")


# ------------------------------------------------------------------------------------------------
# trn2n.48xlarge: the only verbatim --wide, --show-all-procs and --topology examples. The machine is
# not in the catalog, so its snapshot is rebuilt from the reference's own default table.
# ------------------------------------------------------------------------------------------------

TRN2_ID = "i-aabbccdd123456789"
TRN2_BENCH_PID = 268911
# The docs show only the first 77 characters; the rest of the command line is made up.
TRN2_BENCH_COMMAND = ("neuron-bench exec --run-as-cc-neff --warmup none --fixed-instance-count 64 --"
                      "iterations 1000 model.neff")


def trn2_snapshot(*, busy: bool) -> pb.Snapshot:
    rows = [line.strip("|").split("|") for line in reference("trn2n.48xlarge-default.txt").splitlines()
            if line.startswith("| ") and line[2].isdigit()]
    devices = []
    for index, cores, core_ids, memory, connected, bdf, affinity, numa in ([c.strip() for c in r] for r in rows):
        first, last = map(int, core_ids.split("-"))
        assert last - first + 1 == int(cores)
        devices.append(pb.Device(index=int(index), core_ids=range(first, last + 1),
                                 memory_bytes=int(memory.removesuffix(" GB")) << 30,
                                 connected_to=[int(n) for n in connected.split(", ")], bdf=bdf,
                                 cpu_affinity=affinity, numa_node=int(numa)))
    topology = pb.Topology(instance=pb.InstanceInfo(instance_type="trn2n.48xlarge", instance_id=TRN2_ID),
                           devices=devices, shape="torus")
    snapshot = pb.Snapshot(topology=topology)
    if busy:
        snapshot.sessions.add(pid=TRN2_BENCH_PID, command=TRN2_BENCH_COMMAND, runtime_version="2.0.0",
                              core_ids=range(64))
        snapshot.observers.add(pid=NEURON_LS_PID, command="neuron-ls --show-all-procs")
    return snapshot


@pytest.mark.parametrize(("flags", "file", "busy"), [
    ([], "trn2n.48xlarge-default.txt", False),  # the docs' process is not shown there (tools 2.25)
    (["--wide"], "trn2n.48xlarge-wide.txt", True),
    (["--show-all-procs"], "trn2n.48xlarge-show-all-procs.txt", True),
    (["--topology"], "trn2n.48xlarge-topology.txt", True),
])
def test_trn2_docs_layouts(flags: list[str], file: str, busy: bool) -> None:
    # trn2 prints a logical-neuroncore-config header line; no machine neurond models has one
    expected = reference(file).replace("logical-neuroncore-config: 2\n", "")
    assert render(trn2_snapshot(busy=busy), flags) == expected



def test_json_lists_observers_only_with_show_all_procs() -> None:
    flags = ["-j", "-a"]
    snapshot = snapshot_for("inf2.24xlarge", INSTANCE_IDS["inf2.24xlarge"], observers=[self_observer(flags)])
    itself = {"pid": NEURON_LS_PID, "command": "neuron-ls -j -a", "neuron_runtime_version": "NA"}
    assert all(d["neuron_processes"] == [itself] for d in json.loads(render(snapshot, flags)))
    assert all(d["neuron_processes"] == [] for d in json.loads(render(snapshot, ["-j"])))
