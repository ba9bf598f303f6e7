"""neuron-workload as a user runs it: the installed command, a private daemon, JSON on stdout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

NEURON_WORKLOAD = str(Path(sys.executable).parent / "neuron-workload")
PERCENTILES = {"p50", "p90", "p99", "mean", "max"}


def _run(*args: str, timeout: float = 120) -> tuple[int, dict, str]:
    done = subprocess.run([NEURON_WORKLOAD, "--instance-type", "inf2.xlarge", "--progress-interval", "0.5", *args],
                          capture_output=True, text=True, timeout=timeout)
    return done.returncode, json.loads(done.stdout), done.stderr


def test_a_mix_prints_progress_and_a_json_summary_with_both_clocks_and_memory():
    status, summary, stderr = _run("--duration", "2", "bert-tiny:cores=1,batch=2",
                                   "llama-tiny:tp=1,cores=1,seq_len=16,gen_len=4")
    assert status == 0, stderr
    assert "neuron-workload:" in stderr and "requests" in stderr
    assert summary["instance_type"] == "inf2.xlarge" and summary["mode"] == "timing-only"
    encoder, decoder = summary["workloads"]
    for w, unit in ((encoder, "inferences"), (decoder, "tokens")):
        assert w["status"] == "ok" and w["error"] is None and w["requests"] > 0
        assert w[unit] > 0 and w[f"{unit}_per_second"] > 0 and w[f"modeled_{unit}_per_second"] > 0
        assert set(w["latency_seconds"]) == PERCENTILES == set(w["device_latency_seconds"])
        # the modeled time of a request is part of its wall time
        assert 0 < w["device_latency_seconds"]["p50"] <= w["latency_seconds"]["p50"]
        assert 0 < w["device_to_wall_ratio"] <= 1
        assert {"tensors", "constants", "model_code", "model_shared_scratchpad", "runtime_memory"} <= set(w["memory_bytes"])
    assert encoder["cores"] == [0] and decoder["cores"] == [1]
    assert encoder["inferences"] == 2 * encoder["requests"]
    assert decoder["tokens"] == 4 * decoder["requests"]
    assert set(decoder["time_to_first_token_seconds"]) == PERCENTILES
    assert set(decoder["inter_token_latency_seconds"]) == PERCENTILES


def test_compute_mode_reports_the_error_against_numpy():
    status, summary, stderr = _run("--compute", "--duration", "0.5", "--dtype", "float32",
                                   "llama-tiny:tp=2,seq_len=8,gen_len=2")
    assert status == 0, stderr
    (w,) = summary["workloads"]
    assert summary["mode"] == "compute"
    assert w["max_abs_error_vs_numpy"] < 1e-4 * w["max_abs_numpy"]


def test_estimate_of_a_model_that_does_not_fit_names_the_shortfall():
    status, summary, stderr = _run("--estimate", "opt-30b:tp=2")  # 60 GB of weights, one 32 GiB chip
    assert status == 1
    (w,) = summary["workloads"]
    assert w["status"] == "error" and w["requests"] == 0
    assert "needs" in w["error"] and "free" in w["error"] and "short by" in w["error"]
    assert "opt-30b" in stderr


def test_unknown_presets_and_bad_settings_are_usage_errors():
    for spec in ("gpt-9", "bert-base:batch=two", "bert-base:colour=red"):
        done = subprocess.run([NEURON_WORKLOAD, "--address", "unix:///nonexistent.sock", spec],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 2 and done.stdout == ""
        assert "neuron-workload:" in done.stderr


def test_the_runtimes_core_variables_place_the_workloads(address):
    """NEURON_RT_VISIBLE_CORES / NEURON_RT_NUM_CORES limit neuron-workload as they limit any Neuron
    process (the daemon's rules): placement stays within them, and a core outside is an error."""
    import os

    def run(env: dict, *specs: str) -> subprocess.CompletedProcess:
        return subprocess.run([NEURON_WORKLOAD, "--address", address, "--estimate", *specs], capture_output=True,
                              text=True, timeout=120, env={**os.environ, **env})

    visible = run({"NEURON_RT_VISIBLE_CORES": "6-7"}, "bert-tiny:cores=1", "bert-tiny:cores=1")
    assert visible.returncode == 0, visible.stderr
    assert [w["cores"] for w in json.loads(visible.stdout)["workloads"]] == [[6], [7]]
    counted = run({"NEURON_RT_NUM_CORES": "2"}, "bert-tiny")  # the first free run of 2: cores 0-1
    assert counted.returncode == 0, counted.stderr
    assert [w["cores"] for w in json.loads(counted.stdout)["workloads"]] == [[0, 1]]
    outside = run({"NEURON_RT_VISIBLE_CORES": "6-7"}, "bert-tiny:cores=2-3")
    assert outside.returncode == 2
    assert "NeuronCore 2 is not visible to this process (NEURON_RT_VISIBLE_CORES=6-7)" in outside.stderr
    too_many = run({"NEURON_RT_VISIBLE_CORES": "6"}, "bert-tiny:cores=2")
    assert too_many.returncode == 2 and "within NEURON_RT_VISIBLE_CORES=6" in too_many.stderr
    malformed = run({"NEURON_RT_VISIBLE_CORES": "6-x"}, "bert-tiny")
    assert malformed.returncode == 2 and "NEURON_RT_VISIBLE_CORES='6-x' is malformed" in malformed.stderr
