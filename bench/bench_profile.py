"""neuron-profile on a bert-large 24-layer program: capture and view, against the same schedule without
profiling, in the same run.

The program is the bert-large preset's layers as one stage program (24 layers, batch 1, seq 128: the
instructions neurond schedules for one execution). The reference is replaying its schedule without a
recorder: what the daemon itself computes for the program (at load; every execution reuses it). Then:
capture (the replay with a recorder, as GetProfile does, plus the JSON encoding the daemon sends),
view (the analysis and the terminal summary), and each output: the profile file, the summary JSON, the
Chrome trace and the Parquet tables. For each, the median wall time of a few runs, the peak of Python
memory allocated during one run (tracemalloc), and the size of what it writes. Its verdict also needs
the capture to be right: its per-engine busy time equal to the schedule's, to the nanosecond.

    .venv/bin/python bench/bench_profile.py [--quick]
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import common

from neurontools.daemon.isa.program import compile_program
from neurontools.profile import analysis, chrome_trace, explorer_tables
from neurontools.profile.profile_file import write_profile
from neurontools.workloads.architectures import ENCODERS
from neurontools.workloads.encoder_workload import EncoderWorkload


def measure(step, runs: int) -> tuple[float, int, object]:
    """(median seconds, peak bytes allocated by one run, the last result)."""
    times = []
    result = None
    for _ in range(runs):
        started = time.perf_counter()
        result = step()
        times.append(time.perf_counter() - started)
    tracemalloc.start()
    step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return statistics.median(times), peak, result


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir()) if path.is_dir() else path.stat().st_size


def main() -> int:
    args = common.parse_args(__doc__.splitlines()[0])
    runs = 1 if args.quick else 3
    load_before = os.getloadavg()[0]
    workload = EncoderWorkload(ENCODERS["bert-large"], [0], batch=1, seq_len=128, layers_per_program=24)
    program = compile_program(workload.programs["layers"])
    rows = []
    reference, reference_peak, estimate = measure(program.replay, runs)
    rows.append(("schedule without profiling (reference)", reference, reference_peak, None))
    capture_s, capture_peak, profile = measure(lambda: json.dumps(program.profile(), separators=(",", ":")), runs)
    profile = json.loads(profile)
    rows.append(("capture (schedule with a recorder, JSON)", capture_s, capture_peak, None))
    with tempfile.TemporaryDirectory(prefix="nt-bench-profile-") as tmp:
        out = Path(tmp)
        write_profile(out / "layers.profile.json", profile)
        rows[-1] = (*rows[-1][:3], _size(out / "layers.profile.json"))
        view_s, view_peak, result = measure(lambda: analysis.render(analysis.analyze(profile), "bert-large"), runs)
        rows.append(("view: analysis and terminal summary", view_s, view_peak, len(result.encode())))
        summary = analysis.as_dict(analysis.analyze(profile))
        json_s, json_peak, _ = measure(lambda: (out / "summary.json").write_text(json.dumps(summary, indent=2)), runs)
        rows.append(("view --json", json_s, json_peak, _size(out / "summary.json")))
        trace_s, trace_peak, _ = measure(lambda: (out / "trace.json").write_text(
            json.dumps(chrome_trace.trace_events(profile, "bert-large"))), runs)
        rows.append(("view --trace (Chrome trace events)", trace_s, trace_peak, _size(out / "trace.json")))
        parsed = analysis.analyze(profile)
        parquet_s, parquet_peak, _ = measure(lambda: explorer_tables.write_tables(out / "parquet", profile, parsed,
                                                                                 "bert-large"), runs)
        rows.append(("view --parquet (Explorer tables)", parquet_s, parquet_peak, _size(out / "parquet")))
    print(f"bert-large, 24 layers in one program, batch 1, seq 128: {program.instruction_count:,} instructions, "
          f"modeled {estimate.device_time_ns / 1e6:.3f} ms; median of {runs} run(s), peak Python allocation of one")
    common.print_table(("step", "seconds", "x reference", "peak MiB", "output"),
                       [(name, f"{s:.3f}", f"{s / reference:.1f}", f"{peak / 2**20:.1f}",
                         "" if size is None else f"{size / 2**20:.1f} MiB") for name, s, peak, size in rows])
    right = profile["recorded_busy_ns"] == profile["engine_busy_ns"] == {
        name: estimate.engine_busy_ns[engine] for engine, name in ((1, "tensor"), (2, "vector"), (3, "scalar"),
                                                                   (4, "gpsimd"), (5, "dma"))}
    print(f"checked: the capture's busy time per engine equals the schedule's to the ns: {'ok' if right else 'WRONG'}")
    print(common.machine_note(load_before))
    total = capture_s + view_s
    common.print_result(f"{'WRONG: ' if not right else ''}profile of bert-large 24 layers "
                        f"({program.instruction_count:,} instructions): capture {capture_s:.2f} s, view {view_s:.2f} s "
                        f"({total / reference:.1f} x the schedule alone, {reference:.2f} s); profile "
                        f"{rows[1][3] / 2**20:.1f} MiB, trace {rows[4][3] / 2**20:.1f} MiB, parquet "
                        f"{rows[5][3] / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
