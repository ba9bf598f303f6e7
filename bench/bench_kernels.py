"""Kernel execution on neurond: compute speed against numpy, timing-only throughput, cost-model sanity.

(a) Compute mode: a 2048 x 2048 x 2048 matmul from the kernel library (neurontools.kernels.library),
    loaded as a model on one NeuronCore of the real `neurond` (inf2.48xlarge, its own process) and
    executed on resident tensors, interleaved with a bare numpy `a @ b` on float32 arrays in this
    process. Float32 and bfloat16 kernels, both against numpy float32 (numpy has no fast bfloat16
    matmul). The ratio is numpy's median time over the daemon's (throughput ratio; target >= 0.85).
    Each row gives both sides the same number of BLAS threads: 1 (neurond's default, which it sets
    itself; numpy here limited to 1) and one per CPU (a daemon started with OPENBLAS_NUM_THREADS set
    so, numpy here likewise). The verdict is the ratio of the 1-thread rows, what neurond runs by
    default, and the result of every row: its largest error against numpy's product of the same
    (bfloat16-rounded for bfloat16) inputs, relative to the largest value, within MAX_RELATIVE_ERROR.
(b) Timing-only mode: small kernels (one 128 x 128 x 512 bfloat16 matmul step with its DMAs) per
    second on one core and on all 24 cores, one client thread per core, and the daemon's own CPU time
    per kernel (psutil on the daemon process).
(c) Cost model: modeled time of one 128 x 128 x 512 bfloat16 matmul step and of a full 4096^3
    bfloat16 matmul built with the library, next to the peak-rate bound (91.75 TFLOPS per core,
    ref §2.6), and how long compiling the 4096^3 kernel takes.

    .venv/bin/python bench/bench_kernels.py [--quick]
"""

from __future__ import annotations

import ctypes
import glob
import os
import statistics
import time
from collections.abc import Callable

import common
import ml_dtypes
import numpy as np
import psutil

from neurontools._proto import neurond_pb2 as pb
from neurontools.client import Session
from neurontools.daemon.isa.program import compile_program
from neurontools.kernels.library import matmul_program

SIZE = 2048
RATIO_TARGET = 0.85
# Against the product of the same inputs in float32: summation order only for float32 (~1e-6 here);
# a bfloat16 output adds its rounding, half a unit in the last place, 2**-9 of the value at most.
MAX_RELATIVE_ERROR = {"float32": 1e-4, "bfloat16": 2.0**-8}
PEAK_FLOPS = 128 * 128 * 2 * 2.8e9  # per core, bf16 (ref §2.6: 91.75 TFLOPS)
CORES = 24


def _gflops(flops: float, seconds: float) -> str:
    return f"{flops / seconds / 1e9:.1f}"


def _set_numpy_blas_threads(count: int) -> bool:
    """Sets how many threads this process's numpy BLAS uses (numpy wheels bundle scipy-openblas, whose
    symbol is scipy_openblas_set_num_threads64_); False when that library is not found."""
    for path in glob.glob(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs", "*openblas*.so*")):
        setter = getattr(ctypes.CDLL(path), "scipy_openblas_set_num_threads64_", None)
        if setter is not None:
            setter(count)
            return True
    return False


# (label, dtype, a_transposed): A row-major is `a @ b` as given; A.T is the Tensor engine's layout
# (no on-chip transposes).
KERNELS = (("float32", "float32", False), ("float32, A given as A.T", "float32", True),
           ("bfloat16", "bfloat16", False))


def compute_mode(servers: dict[int, common.Server], quick: bool) -> bool:
    """servers: BLAS threads of the daemon -> the daemon. Each row runs numpy with as many."""
    print(f"(a) compute mode: {SIZE}^3 matmul through neurond vs numpy a @ b (float32), interleaved, "
          "the same BLAS threads on both sides")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((SIZE, SIZE), dtype=np.float32)
    b = rng.standard_normal((SIZE, SIZE), dtype=np.float32)
    flops = 2 * SIZE**3
    rows, ok = [], True
    for threads, server in servers.items():
        if not _set_numpy_blas_threads(threads):
            print("    cannot set numpy's BLAS threads in this process: no row can compare equal threads")
            return False
        blas = f"{threads}" + (" (neurond's default)" if threads == 1 else "")
        with Session(server.address, visible_cores="0", command="bench_kernels compute") as session:
            for label, dtype, a_transposed in KERNELS:
                storage = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.float32
                program = matmul_program(SIZE, SIZE, SIZE, dtype, a_transposed=a_transposed)
                model = session.load_model(f"matmul-{dtype}", program)
                ta = session.tensor_from((a.T if a_transposed else a).astype(storage))
                tb = session.tensor_from(b.astype(storage))
                out = session.allocate((SIZE, SIZE), dtype)
                result = model.execute(a=ta, b=tb, out=out)
                same_inputs = [m.astype(storage).astype(np.float32) for m in (a, b)]
                reference = same_inputs[0] @ same_inputs[1]
                error = np.max(np.abs(out.read().astype(np.float32) - reference)) / np.max(np.abs(reference))
                correct = bool(error <= MAX_RELATIVE_ERROR[dtype])
                samples = common.time_interleaved(
                    {"neurond": lambda: model.execute(a=ta, b=tb, out=out), "numpy": lambda: a @ b},
                    count=3 if quick else 10, warmup=1)
                daemon_s, numpy_s = (statistics.median(samples[name]) / 1e9 for name in ("neurond", "numpy"))
                ratio = numpy_s / daemon_s
                fast = ratio >= RATIO_TARGET or threads != 1  # the ratio decides on neurond's default only
                ok &= fast and correct
                rows.append((label, blas, f"{daemon_s * 1e3:.1f}", _gflops(flops, daemon_s), f"{numpy_s * 1e3:.1f}",
                             _gflops(flops, numpy_s), f"{ratio:.2f}", f"{error:.1e}",
                             "ok" if correct else "WRONG", common.verdict(fast) if threads == 1 else "(info)",
                             f"{result.device_latency * 1e3:.3f}"))
                common.print_result(f"{label} {SIZE}^3 matmul through neurond, {threads} BLAS thread(s) on both sides: "
                                    f"{ratio:.2f}x numpy float32 throughput (target >= {RATIO_TARGET}), max rel "
                                    f"err {error:.1e} (limit {MAX_RELATIVE_ERROR[dtype]:.1e}): "
                                    f"{'ok' if correct else 'WRONG'}")
                model.unload()
                for tensor in (ta, tb, out):
                    tensor.free()
    _set_numpy_blas_threads(os.cpu_count() or 1)
    common.print_table(["kernel", "BLAS threads, each side", "neurond ms", "GFLOP/s", "numpy ms", "GFLOP/s", "ratio",
                        "max rel err", "result", "speed", "modeled ms"], rows)
    print("    neurond ms: median wall time of Execute (client to client); numpy: a @ b on float32 in this\n"
          "    process, with as many BLAS threads as the daemon; modeled ms: the device time of a real\n"
          "    NeuronCore-v2 (the daemon occupies the core for the larger of the two). max rel err: against\n"
          "    numpy's product of the same inputs (rounded to bfloat16 for the bfloat16 kernel), relative to\n"
          f"    its largest value; limits {', '.join(f'{k} {v:.1e}' for k, v in MAX_RELATIVE_ERROR.items())}.\n"
          f"    Load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs.\n")
    return ok


def _counted(call: Callable[[], object], counts: list[int], index: int) -> Callable[[], None]:
    def run() -> None:
        call()
        counts[index] += 1
    return run


def timing_only(address: str, pid: int, quick: bool) -> None:
    print("(b) timing-only mode: one 128x128x512 bf16 matmul step with its DMAs, per second")
    program = matmul_program(128, 128, 512, "bfloat16", a_transposed=True)
    modeled_ns = compile_program(program).estimate.device_time_ns
    seconds = 1.0 if quick else 3.0
    daemon = psutil.Process(pid)
    rows = []
    with Session(address, visible_cores=f"0-{CORES - 1}", command="bench_kernels timing-only") as session:
        calls: list[Callable[[], object]] = []
        for core in session.core_ids:
            model = session.load_model(f"step-nc{core}", {core: program})
            a = session.allocate((128, 128), "bfloat16", core_id=core)
            b = session.allocate((128, 512), "bfloat16", core_id=core)
            out = session.allocate((128, 512), "bfloat16", core_id=core)
            calls.append(lambda m=model, a=a, b=b, out=out: m.execute(a=a, b=b, out=out, timing_only=True))
        for label, workers in (("1 core", calls[:1]), (f"{CORES} cores", calls)):
            counts = [0] * len(workers)
            before = daemon.cpu_times()
            started = time.perf_counter()
            common.calls_per_second([_counted(c, counts, i) for i, c in enumerate(workers)], seconds)
            elapsed = time.perf_counter() - started
            after = daemon.cpu_times()
            total = sum(counts)
            cpu = (after.user - before.user) + (after.system - before.system)
            rows.append((label, f"{total / elapsed:.0f}", f"{cpu / total * 1e6:.0f}",
                         f"{len(workers) * 1e9 / modeled_ns:.0f}"))
            common.print_result(f"timing-only small kernels on {label}: {total / elapsed:.0f}/s, daemon CPU "
                                f"{cpu / total * 1e6:.0f} us per kernel")
    common.print_table(["cores", "kernels/s", "daemon CPU us/kernel", "device bound /s"], rows)
    print(f"    modeled device time per kernel {modeled_ns / 1e3:.2f} us; 'device bound' is what the cores "
          "would sustain back to back.\n")


def cost_model() -> None:
    print("(c) cost model: modeled time against the peak-rate bound (91.75 TFLOPS per core, bf16)")
    rows = []
    step = compile_program(matmul_program(128, 128, 512, "bfloat16", a_transposed=True)).estimate
    bound = 2 * 128 * 128 * 512 / PEAK_FLOPS * 1e9
    rows.append(("128x128x512 step, Tensor engine", f"{step.engine_busy_ns[pb.TENSOR] / 1e3:.4f}",
                 f"{bound / 1e3:.4f}", f"{bound / step.engine_busy_ns[pb.TENSOR]:.0%}", "", ""))
    rows.append(("128x128x512 kernel incl. DMA", f"{step.device_time_ns / 1e3:.4f}", f"{bound / 1e3:.4f}",
                 f"{bound / step.device_time_ns:.0%}", "", ""))
    n = 4096
    bound = 2 * n**3 / PEAK_FLOPS * 1e9
    for label, a_transposed in (("A given as A.T", True), ("A row-major", False)):
        program = matmul_program(n, n, n, "bfloat16", a_transposed=a_transposed)
        started = time.process_time()
        estimate = compile_program(program).estimate
        compile_s = time.process_time() - started
        rows.append((f"4096^3, {label}", f"{estimate.device_time_ns / 1e3:.1f}", f"{bound / 1e3:.1f}",
                     f"{bound / estimate.device_time_ns:.0%}", f"{len(program.instructions)}", f"{compile_s:.2f}"))
        common.print_result(f"4096^3 bf16 matmul ({label}) modeled {estimate.device_time_ns / 1e6:.3f} ms vs "
                            f"peak bound {bound / 1e6:.3f} ms ({bound / estimate.device_time_ns:.0%} of peak)")
    common.print_table(["kernel", "modeled us", "peak bound us", "of peak", "instructions", "compile s"], rows)
    print()


def main() -> int:
    args = common.parse_args(__doc__.splitlines()[0])
    cost_model()
    cpus = os.cpu_count() or 1
    with (common.neurond_process("inf2.48xlarge") as default,  # neurond sets one BLAS thread itself
          common.neurond_process("inf2.48xlarge", env={"OPENBLAS_NUM_THREADS": str(cpus)}) as per_cpu):
        ok = compute_mode({1: default, cpus: per_cpu} if cpus > 1 else {1: default}, args.quick)
        timing_only(default.address, default.pid, args.quick)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
