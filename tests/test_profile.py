"""neuron-profile: captures that are the cost model's own schedule, the summary, the trace-event file,
Neuron Explorer's Parquet tables, and the errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from neurontools.client import Device, InvalidRequest, NotFoundError, Session
from neurontools.daemon.isa.program import compile_program
from neurontools.daemon.server.embedded import running_daemon
from neurontools.kernels import library
from neurontools.kernels.builder import Kernel
from neurontools.kernels.examples import mlp_program
from neurontools.profile import analysis, chrome_trace, explorer_tables
from neurontools.profile.profile_file import ProfileFileError, read_profile, write_profile

NEURON_PROFILE = [sys.executable, "-m", "neurontools.profile.cli"]


@pytest.fixture(scope="module")
def daemon():
    with running_daemon("inf2.xlarge") as running:
        yield running


def _mlp(session: Session, core: int):
    model = session.load_model(f"mlp-{core}", {core: mlp_program(weights=np.full((128, 256), 0.01, np.float32))})
    tensors = {"xT": session.tensor_from(np.ones((128, 64), np.float32), core_id=core),
               "out": session.allocate((64, 256), core_id=core), "rowmax": session.allocate((64, 1), core_id=core)}
    return model, tensors


def _engine_busy(snapshot, core: int) -> dict[str, int]:
    names = {1: "tensor", 2: "vector", 3: "scalar", 4: "gpsimd", 5: "dma"}
    return {names[e.engine]: e.busy_ns for e in snapshot.cores[core].engines}


def _delta(after: dict, before: dict) -> dict:
    return {k: after[k] - before[k] for k in after}


# -- the capture is the schedule ------------------------------------------------------------------

def test_busy_time_in_the_capture_equals_the_daemons_counters_to_the_nanosecond(daemon):
    with Session(daemon.address, visible_cores="0-1") as session, Device(daemon.address) as device:
        mlp, tensors = _mlp(session, 0)
        # A tensor-parallel model: each rank all-reduces, so its schedule includes the planned collective.
        programs = {}
        for core in (0, 1):
            k = Kernel()
            x = k.output("x", (1 << 16,), "float32")
            library.all_reduce(k, x, x)
            programs[core] = k.program()
        tp = session.load_model("tp", programs)
        bindings = {core: {"x": session.allocate((1 << 16,), "float32", core_id=core)} for core in (0, 1)}
        runs = [(mlp.model_id, [0], lambda: mlp.execute(tensors, timing_only=True)),
                (tp.model_id, [0, 1], lambda: session.execute(tp, {}, core_bindings=bindings, timing_only=True))]
        for model_id, cores, run in runs:
            before = device.snapshot()
            run()
            after = device.snapshot()
            for core in cores:
                profile = json.loads(device.profile(model_id, core).profile_json)
                counted = _delta(_engine_busy(after, core), _engine_busy(before, core))
                assert profile["engine_busy_ns"] == counted
                assert profile["recorded_busy_ns"] == counted  # summed from the records themselves
                assert profile["device_time_ns"] == after.cores[core].device_time_ns - before.cores[core].device_time_ns
                per_engine: dict[str, int] = {}
                for record in profile["instructions"]:
                    per_engine[record["engine"]] = per_engine.get(record["engine"], 0) + 1
                instructions = {name: n for name, n in profile["engine_instructions"].items() if n}
                assert {name: per_engine.get(name, 0) for name in instructions} == instructions
            if model_id == tp.model_id:
                collective = [r for r in profile["instructions"] if r["engine"] == "collectives"]
                assert len(collective) == 1 and collective[0]["end_ns"] > collective[0]["start_ns"]


def test_profile_errors_name_the_fix(daemon):
    with Session(daemon.address, visible_cores="0") as session, Device(daemon.address) as device:
        model, _ = _mlp(session, 0)
        with pytest.raises(InvalidRequest, match="has not executed yet: a profile describes its first execution"):
            device.profile(model.model_id)
        with pytest.raises(NotFoundError, match="no model 99999 is loaded"):
            device.profile(99999)
        with pytest.raises(NotFoundError, match="no subgraph on NeuronCore 1; it runs on NeuronCore 0"):
            device.profile(model.model_id, 1)


def test_a_profile_by_session_needs_that_session_open_and_its_own_model(daemon):
    with Session(daemon.address, visible_cores="0") as ended:
        ended_id = ended.session_id
    with Session(daemon.address, visible_cores="0") as session, Session(daemon.address, visible_cores="1") as other, \
            Device(daemon.address) as device:
        model, tensors = _mlp(session, 0)
        model.execute(tensors, timing_only=True)
        assert device.profile(model.model_id, session_id=session.session_id).session_id == session.session_id
        with pytest.raises(NotFoundError, match=f"no session {ended_id} is open"):
            device.profile(model.model_id, session_id=ended_id)
        wrong = f"belongs to session {session.session_id}, not session {other.session_id}"
        with pytest.raises(NotFoundError, match=wrong):
            device.profile(model.model_id, session_id=other.session_id)
        model_id, session_id = model.model_id, session.session_id
    # The session is gone: its models went with it, whichever way the model is named.
    with Device(daemon.address) as device:
        with pytest.raises(NotFoundError, match=f"no session {session_id} is open"):
            device.profile(model_id, session_id=session_id)
        with pytest.raises(NotFoundError, match=f"no model {model_id} is loaded"):
            device.profile(model_id)


# -- the summary, by hand -------------------------------------------------------------------------

def _small_kernel() -> dict:
    k = Kernel()
    x, out = k.input("x", (128, 512), "float32"), k.output("out", (128, 512), "float32")
    t, u = k.sbuf((128, 512), "float32"), k.sbuf((128, 512), "float32")
    k.dma_copy(t, x)
    k.memset(u, 1.0, engine="vector")
    k.tensor_tensor(u, t, u, "add", engine="vector")
    k.dma_copy(out, u)
    return compile_program(k.program()).profile()


def test_golden_summary_of_a_small_kernel():
    # By hand, from the reference's rates (docs/timing-model.md):
    # DMA: 128 descriptors of 2 KiB (one per SBUF partition) over 16 queues, each queue at 410 GiB/s / 16
    #   (the core's HBM share): 8 x (16 ns + 2048 B / 25.625 GiB/s) = 723.465 ns, then the 1300 ns start.
    # memset: 512 elements at 1.12 GHz = 457.143 ns on Vector (parallel with the load).
    # add: 2 x 512 cycles = 914.286 ns on Vector, after the load's 2023.465 ns; its latency 100 cycles at
    #   1.12 GHz + 3 accesses x 60 cycles at 1.4 GHz = 217.857 ns.
    # store: after the add's 3155.608 ns, 723.465 ns + 1300 ns: device time 5179.073 ns.
    descriptor = 16 + 2048 / (410 * 2**30 / 16) * 1e9
    dma = 8 * descriptor
    add_finish = dma + 1300 + 1024 / 1.12 + 100 / 1.12 + 180 / 1.4
    total = add_finish + dma + 1300
    vector = 512 / 1.12 + 1024 / 1.12
    assert round(total) == 5179 and round(2 * dma) == 1447 and round(vector) == 1371
    text = analysis.render(analysis.analyze(_small_kernel()), "golden")
    assert text.splitlines()[:20] == [
        "golden",
        "device time 5.179 µs (modeled NeuronCore-v2)",
        "",
        "engine      busy µs   utilization  instructions",
        "tensor         0.000         0.0%             0",
        "vector         1.371        26.5%             2",
        "scalar         0.000         0.0%             0",
        "gpsimd         0.000         0.0%             0",
        "dma            1.447        27.9%             2",
        "",
        "DMA: 2 transfers, 524,288 bytes, active 1.447 µs, 337.5 GiB/s while active (82% of the core's HBM bandwidth)",
        "time split: compute 1.371 µs, DMA 1.447 µs, latency 2.361 µs -> latency-bound",
        "",
        "top instructions by engine time",
        "opcode               engine      count    busy µs   share",
        "dma_copy             dma             2      1.447   27.9%",
        "tensor_tensor        vector          1      0.914   17.7%",
        "memset               vector          1      0.457    8.8%",
        "",
        "findings",
    ]
    # The critical path is load -> add -> store; between them, the two DMA starts and the add's latency.
    result = analysis.analyze(_small_kernel())
    assert result.critical_path == [0, 2, 3]
    assert result.critical_by_engine["wait"] == pytest.approx(1300 + 217.857 + 1300, abs=0.01)
    assert sum(result.critical_by_engine.values()) == pytest.approx(total, abs=0.01)


# -- the trace-event file --------------------------------------------------------------------------

def _check_trace_event_format(trace: dict) -> None:
    """The JSON object format of the Trace Event Format (the document Chrome and Perfetto read):
    a traceEvents list; complete events need name, ph, ts, dur >= 0, pid, tid; metadata events name
    the process or thread; flow start/finish events pair up by id with s before f."""
    assert isinstance(trace["traceEvents"], list) and trace["displayTimeUnit"] in ("ms", "ns")
    flows: dict[int, list[dict]] = {}
    for event in trace["traceEvents"]:
        assert event["ph"] in {"X", "M", "s", "f"}, event
        assert isinstance(event["pid"], int)
        if event["ph"] == "X":
            assert {"name", "ts", "dur", "tid"} <= event.keys() and event["dur"] >= 0 and event["ts"] >= 0
        elif event["ph"] == "M":
            assert event["name"] in {"process_name", "thread_name", "thread_sort_index"} and "args" in event
        else:
            flows.setdefault(event["id"], []).append(event)
    for pair in flows.values():
        assert [e["ph"] for e in pair] == ["s", "f"] and pair[0]["ts"] <= pair[1]["ts"]
        assert pair[1].get("bp") == "e"


def test_the_trace_is_in_the_trace_event_format_with_a_track_per_engine_and_queue():
    profile = _small_kernel()
    trace = json.loads(json.dumps(chrome_trace.trace_events(profile, "golden")))
    _check_trace_event_format(trace)
    names = {e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "thread_name"}
    assert {"tensor", "vector", "scalar", "gpsimd", "collectives"} <= names
    assert {f"dma queue {q}" for q in range(16)} <= names  # 128 descriptors spread over all 16 queues
    slices = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert len(slices) == 2 * 16 + 2  # each transfer once per queue, and the two Vector instructions
    assert len([e for e in trace["traceEvents"] if e["ph"] == "s"]) == 2  # add waits for the load, store for add


# -- Neuron Explorer's tables ----------------------------------------------------------------------

# Transcribed from the Profile Parquet Schema Reference, schema version 7.4.0 (aws-neuron-sdk,
# tools/neuron-explorer/profile-schema-reference.rst): every required column of each table, and its type
# (the reference's "number (float)" is OpenAPI's 32-bit float, pyarrow's "float"; it says "number (double)"
# for 64 bits).
REQUIRED = {
    "Instruction": {"start_ts": "int64", "end_ts": "int64", "duration_ns": "int64", "engine": "string",
                    "opcode": "string", "operands": "string", "id": "int64", "pc": "int64", "bir_id": "string"},
    "DmaPacket": {"start_ts": "int64", "end_ts": "int64", "duration_ns": "int64", "id": "int64",
                  "packet_idx": "int32", "packet_aggregation_id": "int64", "read_bytes": "int64",
                  "write_bytes": "int64", "transfer_bytes": "int64", "throughput": "float",
                  "queue_type": "string", "crc": "int64"},
    "Metadata": {"profile_schema_version": "string", "ntff_version": "int32", "num_physical_cores": "int32",
                 "vnc_enabled": "bool", "first_hw_timestamp": "int64", "last_hw_timestamp": "int64",
                 "first_ts": "string", "last_ts": "string", "dma_ddr_bandwidth": "float",
                 "num_dma_engines_per_neuroncore": "int32", "hbm_ddr_bandwidth": "float",
                 "tensor_engine_num_rows": "int64", "tensor_engine_num_cols": "int64",
                 "tensor_engine_clock_freq": "float", "vector_engine_clock_freq": "float",
                 "vector_engine_num_channels": "int64", "scalar_engine_clock_freq": "float",
                 "scalar_engine_num_channels": "int64", "gpsimd_engine_clock_freq": "float",
                 "gpsimd_engine_num_channels": "int64", "neuroncore_clock_freq": "float",
                 "ticks_per_nanosec": "int64"},
}
# Optional columns we write, with their documented types (Summary has no required column).
OPTIONAL = {
    "Summary": {"total_time": "float", "model_flops": "int64", "dma_active_time": "float",
                "dma_transfer_count": "int64", "dma_transfer_total_bytes": "int64", "hbm_read_bytes": "int64",
                "hbm_write_bytes": "int64", "tensor_engine_active_time_percent": "float",
                "vector_engine_instruction_count": "int64", "matmul_instruction_count": "int64",
                "mfu_estimated_percent": "float", "total_exec_time": "float"},
    "Instruction": {"timeline_track": "string", "raw_flops": "int64", "hbm_read_bytes": "int64"},
    "DmaPacket": {"engine_idx": "int64", "queue_name": "string", "queue_idx": "int64"},
    "Metadata": {"instance_type": "string", "is_simulation": "bool", "neuroncore_idx": "int64"},
}


def test_parquet_tables_follow_the_documented_schema(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is in the test extra; install it")
    profile = _small_kernel()
    result = analysis.analyze(profile)
    explorer_tables.write_tables(tmp_path, profile, result, "golden")
    tables = {name: pq.read_table(tmp_path / f"{name}.parquet") for name in ("Metadata", "Summary", "Instruction",
                                                                          "DmaPacket")}
    for name, table in tables.items():
        types = {field.name: str(field.type) for field in table.schema}
        for column, kind in {**REQUIRED.get(name, {}), **OPTIONAL.get(name, {})}.items():
            assert types.get(column) == kind, (name, column, types.get(column))
        assert table.schema.metadata[b"profile_schema_version"] == b"7.4.0"
    metadata = tables["Metadata"].to_pylist()[0]
    assert metadata["profile_schema_version"] == "7.4.0" and metadata["is_simulation"] is True
    # The values a pandas script would read: one row per instruction, one per DMA queue share.
    instructions = tables["Instruction"].to_pylist()
    assert [row["opcode"] for row in instructions] == ["dma_copy", "memset", "tensor_tensor", "dma_copy"]
    assert instructions[2]["start_ts"] == 2023 and instructions[2]["raw_flops"] == 128 * 512
    packets = tables["DmaPacket"].to_pylist()
    assert len(packets) == 32 and sum(p["transfer_bytes"] for p in packets) == 2 * 128 * 512 * 4
    summary = tables["Summary"].to_pylist()[0]
    assert summary["total_time"] == pytest.approx(5179e-9)  # the device time, in whole ns as the daemon counts it
    assert summary["hbm_read_bytes"] == summary["hbm_write_bytes"] == 128 * 512 * 4


# -- the command ------------------------------------------------------------------------------------

def _neuron_profile(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*NEURON_PROFILE, *args], capture_output=True, text=True, timeout=timeout)


def test_capture_a_programs_model_and_view_it(daemon, tmp_path):
    with Session(daemon.address, visible_cores="1") as session:
        model, tensors = _mlp(session, 1)
        not_yet = _neuron_profile("capture", "--model", str(model.model_id), "--address", daemon.address,
                                  "-o", str(tmp_path / "p.json"))
        assert not_yet.returncode == 1 and "has not executed yet" in not_yet.stderr
        assert not (tmp_path / "p.json").exists()
        model.execute(tensors, timing_only=True)
        done = _neuron_profile("capture", "--model", str(model.model_id), "--session", str(session.session_id),
                               "--address", daemon.address, "-o", str(tmp_path / "p.json"))
    assert done.returncode == 0, done.stderr
    gone = _neuron_profile("capture", "--model", str(model.model_id), "--session", str(session.session_id),
                           "--address", daemon.address, "-o", str(tmp_path / "gone.json"))
    assert gone.returncode == 1 and f"no session {session.session_id} is open" in gone.stderr
    assert not (tmp_path / "gone.json").exists()
    assert f"model {model.model_id} (mlp-1) on NeuronCore 1" in done.stdout
    viewed = _neuron_profile("view", str(tmp_path / "p.json"), "--json", str(tmp_path / "s.json"),
                             "--trace", str(tmp_path / "t.json"))
    assert viewed.returncode == 0, viewed.stderr
    assert viewed.stdout.startswith("profile of mlp-1 on NeuronCore 1 of inf2.xlarge\n")
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["device_time_ns"] == read_profile(tmp_path / "p.json")["device_time_ns"]
    _check_trace_event_format(json.loads((tmp_path / "t.json").read_text()))


def test_bad_files_and_directories_are_refused_and_nothing_is_left(tmp_path):
    profile = _small_kernel()
    old = dict(profile, version=0)
    write_profile(tmp_path / "old.json", old)
    refused = _neuron_profile("view", str(tmp_path / "old.json"))
    assert refused.returncode == 2
    assert "is a neurontools-profile of version 0; this neuron-profile reads version 1" in refused.stderr
    (tmp_path / "junk.json").write_text("not json")
    assert "is not a profile: it is not JSON" in _neuron_profile("view", str(tmp_path / "junk.json")).stderr
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.geteuid() == 0:
            with pytest.raises(ProfileFileError):
                write_profile(tmp_path / "missing-dir" / "p.json", profile)
        else:
            with pytest.raises(ProfileFileError, match="cannot write in"):
                write_profile(locked / "p.json", profile)
        assert os.listdir(locked) == []
    finally:
        locked.chmod(0o700)
    write_profile(tmp_path / "good.json", profile)
    missing = _neuron_profile("view", str(tmp_path / "good.json"), "--trace", str(tmp_path / "no" / "t.json"))
    assert missing.returncode == 2 and f"cannot write in {tmp_path / 'no'}" in missing.stderr
    assert sorted(os.listdir(tmp_path)) == ["good.json", "junk.json", "locked", "old.json"]  # no temporary left


@pytest.mark.slow
def test_a_bert_large_layer_names_the_bound_of_the_attribution_table(tmp_path):
    from neurontools.workloads.architectures import ENCODERS
    from neurontools.workloads.encoder_workload import EncoderWorkload
    from neurontools.workloads.estimate import estimate

    done = _neuron_profile("capture", "--preset", "bert-large:cores=1", "-o", str(tmp_path), timeout=300)
    assert done.returncode == 0, done.stderr
    viewed = _neuron_profile("view", str(tmp_path / "layers.profile.json"))
    attribution = estimate(EncoderWorkload(ENCODERS["bert-large"], [0], batch=1, seq_len=128), "inf2.xlarge")
    largest = max(("compute", "DMA", "latency"), key=attribution.request.seconds.get)
    assert largest == "DMA"  # bench_timing.py's table: BERT-large b1 is 58 % DMA
    assert "-> DMA-bound" in viewed.stdout and "DMA-bound: the DMA queues are busy" in viewed.stdout


@pytest.mark.slow
def test_neuron_workload_profiles_each_stage_program_it_ran(daemon, tmp_path):
    done = subprocess.run([sys.executable, "-m", "neurontools.workloads.cli", "--address", daemon.address, "--estimate",
                           "bert-tiny:cores=1", "--profile", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(tmp_path)) == ["bert-tiny-embed.profile.json", "bert-tiny-layers.profile.json",
                                            "bert-tiny-pooler.profile.json"]
    for name in os.listdir(tmp_path):
        profile = read_profile(tmp_path / name)
        assert profile["source"]["model_name"] == name.removesuffix(".profile.json")
        assert profile["device_time_ns"] > 0 and profile["instructions"]
