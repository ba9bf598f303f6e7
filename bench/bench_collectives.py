"""Collectives: the timing model against nccom-test, and what a 24-rank all-reduce costs the daemon.

(a) Modeled time of a 2-rank float32 all-reduce, 1 KiB to 1 GiB, next to the nccom-test figures in the
    reference (§4.6: instance type not stated, "should not be considered up-to-date"): the ranks on the
    two cores of one device (through its HBM: nccom-test's first two ranks; the collective copy rate is
    calibrated on its 1 GiB figure) and on two neighbouring Neuron devices (one NeuronLink), each plus
    one execution launch as every nccom-test iteration pays, with nccom-test's bus bandwidth
    (algbw x 2(r-1)/r).
(b) Modeled 1 GiB all-reduce over every core of inf2.48xlarge (ring, both directions), inf2.24xlarge
    (chain) and trn1.32xlarge (torus: rows then columns), and the algorithm chosen by message size for
    a 24-rank all-reduce.
(c) Wall-clock cost in the real `neurond` (its own process): a 24-rank 1 MiB all-reduce model executed
    in timing-only mode, against the same 24 subgraphs without the collective and a 1-core model: median
    Execute time (client to client) and the daemon's CPU per execution.

    .venv/bin/python bench/bench_collectives.py [--quick]
"""

from __future__ import annotations

import os
import statistics

import common
import numpy as np
import psutil

from neurontools.client import Session
from neurontools.daemon.isa import cost_model
from neurontools.daemon.device import topology as topo
from neurontools.daemon.collectives.planning import Links, fastest
from neurontools.kernels import library
from neurontools.kernels.builder import Kernel

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
# nccom-test, 2-rank fp32 all-reduce (ref §4.6): bytes -> seconds.
NCCOM = {KiB: 58e-6, MiB: 68e-6, 4 * MiB: 107e-6, 16 * MiB: 332e-6, 64 * MiB: 1214e-6, GiB: 18.93e-3}


def all_reduce_s(instance: str, cores, size: int) -> float:
    """The modeled all-reduce alone (the algorithm the model picks for the size), without a launch."""
    return algorithm_and_time(instance, cores, size)[1]


def algorithm_and_time(instance: str, cores, size: int) -> tuple[str, float]:
    links = Links(topo.lookup(instance))
    name, duration_ns, _ = fastest(links, "all_reduce", tuple(cores), size // 4, 4)
    return name, duration_ns / 1e9


LAUNCH_S = cost_model.EXECUTION_LAUNCH_NS / 1e9


def bus_bandwidth(size: int, seconds: float, ranks: int) -> float:
    """nccom-test's busbw in GiB/s: algbw (size / time) x 2(r - 1)/r for an all-reduce."""
    return size / seconds * 2 * (ranks - 1) / ranks / GiB


def _size(nbytes: int) -> str:
    return f"{nbytes // GiB} GiB" if nbytes >= GiB else f"{nbytes // MiB} MiB" if nbytes >= MiB else f"{nbytes // KiB} KiB"


def against_nccom() -> None:
    print("(a) 2-rank float32 all-reduce: modeled vs nccom-test (ref §4.6)")
    rows = []
    for size, measured in NCCOM.items():
        local = all_reduce_s("inf2.48xlarge", (0, 1), size) + LAUNCH_S  # the two cores of device 0
        link = all_reduce_s("inf2.48xlarge", (0, 2), size) + LAUNCH_S   # devices 0 and 1
        rows.append((_size(size), f"{measured * 1e6:.0f}", f"{bus_bandwidth(size, measured, 2):.1f}",
                     f"{local * 1e6:.1f}", f"{local / measured:.2f}", f"{link * 1e6:.1f}", f"{link / measured:.2f}",
                     f"{bus_bandwidth(size, link, 2):.1f}"))
    common.print_table(["size", "nccom us", "busbw GiB/s", "1 device us", "ratio", "1 link us", "ratio",
                        "busbw GiB/s"], rows)
    local = {size: all_reduce_s("inf2.48xlarge", (0, 1), size) + LAUNCH_S for size in NCCOM}
    worst = max(abs(local[size] / measured - 1) for size, measured in NCCOM.items())
    common.print_result(f"2-rank fp32 all-reduce on one device modeled within {worst:.0%} of nccom-test from 1 KiB "
                        f"to 1 GiB (1 GiB {local[GiB] * 1e3:.2f} ms vs {NCCOM[GiB] * 1e3:.2f} ms, the calibration point)")
    print(f"    One device: copies read and written at the calibrated {cost_model.COLLECTIVE_HBM_BYTES_PER_S / GiB:.0f} "
          "GiB/s, two steps, plus the 55 us launch (nccom-test's floor).\n"
          f"    One link: {cost_model.LINK_BYTES_PER_S / GiB:.0f} GiB/s each way. The mid sizes come out slower than "
          "measured: the model does not pipeline one collective's steps.\n")


def full_machines() -> None:
    print("(b) 1 GiB float32 all-reduce over every core, modeled")
    rows = []
    for instance, shape in (("inf2.48xlarge", "ring, both directions"), ("inf2.24xlarge", "chain"),
                            ("trn1.32xlarge", "torus, rows then columns")):
        cores = range(topo.lookup(instance).core_count)
        seconds = all_reduce_s(instance, cores, GiB)
        rows.append((instance, shape, len(cores), f"{seconds * 1e3:.2f}", f"{bus_bandwidth(GiB, seconds, len(cores)):.0f}"))
        common.print_result(f"{instance} {len(cores)}-rank 1 GiB all-reduce modeled {seconds * 1e3:.2f} ms "
                            f"(busbw {bus_bandwidth(GiB, seconds, len(cores)):.0f} GiB/s)")
    common.print_table(["instance", "algorithm", "ranks", "ms", "busbw GiB/s"], rows)
    print("    The full ring runs two counter-rotating rings, so every link works both ways (2 x 96 GiB/s), but\n"
          "    each step also copies between the two cores of every device at the collective copy rate, which\n"
          "    bounds it; the chain's wrap-around returns over the links' other direction, one ring;\n"
          "    trn1.32xlarge's 4 links per chip are read at the same 96 GiB/s.\n")
    rows = []
    for size in (KiB, 8 * KiB, 64 * KiB, 256 * KiB, MiB, 16 * MiB):
        name, seconds = algorithm_and_time("inf2.48xlarge", range(24), size)
        rows.append((_size(size), name, f"{seconds * 1e6:.1f}"))
    common.print_table(["24-rank all-reduce", "algorithm", "modeled us"], rows)
    print()


def _models(session: Session, elements: int) -> dict[str, tuple]:
    """label -> (model, bindings) for the wall-clock comparison."""
    out = {}
    for label, cores, collective in (("24 ranks, all-reduce", range(24), True),
                                     ("24 subgraphs, no collective", range(24), False),
                                     ("1 core, no collective", range(1), False)):
        programs = {}
        for core in cores:
            k = Kernel()
            x = k.output("x", (elements,), "float32")
            if collective:
                library.all_reduce(k, x, x)
            else:
                k.memset(k.sbuf((1, 1), "float32"), 0.0)
            programs[core] = k.program()
        model = session.load_model(label, programs)
        bindings = {core: {"x": session.allocate((elements,), "float32", core_id=core)} for core in cores}
        out[label] = (model, bindings)
    return out


def wall_clock(address: str, pid: int, quick: bool, load_before: float) -> None:
    elements = MiB // 4
    count = 50 if quick else 300
    print(f"(c) wall-clock cost in neurond: timing-only executions of a 1 MiB all-reduce, median of {count}")
    daemon = psutil.Process(pid)
    rows = []
    made = 0

    with Session(address, visible_cores="0-23", command="bench_collectives") as session:
        models = _models(session, elements)
        for label, (model, bindings) in models.items():
            def run(model=model, bindings=bindings):
                nonlocal made
                made += 1
                return session.execute(model, {}, core_bindings=bindings, timing_only=True)
            result = run()
            before = daemon.cpu_times()
            samples = common.time_interleaved({label: run}, count=count, warmup=10)[label]
            after = daemon.cpu_times()
            cpu = (after.user - before.user) + (after.system - before.system)
            median = statistics.median(samples)
            rows.append((label, f"{result.device_latency * 1e6:.1f}", f"{median / 1e3:.0f}",
                         f"{cpu / count * 1e6:.0f}"))
            common.print_result(f"timing-only {label}: {median / 1e3:.0f} us per Execute (modeled "
                                f"{result.device_latency * 1e6:.1f} us), daemon CPU {cpu / count * 1e6:.0f} us")
        wrong = _all_reduce_sums(session, models["24 ranks, all-reduce"][0], elements)
        made += 1
        counted = common.executions_accounted(address, session.session_id, made)
        wrong += [counted] if counted else []
    common.print_table(["model", "modeled us", "Execute us", "daemon CPU us"], rows)
    print(f"    {common.machine_note(load_before)}")
    print("    checked: the all-reduce computed (each rank holds the sum of the 24 ranks' inputs), and the daemon "
          f"counted exactly the executions made, all completed: {'ok' if not wrong else 'WRONG'}\n")
    for problem in wrong:
        common.print_result(f"WRONG: {problem}")


def _all_reduce_sums(session: Session, model, elements: int) -> list[str]:
    """One compute-mode execution of the timed all-reduce on random inputs, against numpy's sum."""
    rng = np.random.default_rng(7)
    inputs = {core: rng.standard_normal(elements, dtype=np.float32) for core in range(24)}
    bindings = {core: {"x": session.tensor_from(x, core_id=core)} for core, x in inputs.items()}
    session.execute(model, {}, core_bindings=bindings)
    expected = np.sum(np.stack(list(inputs.values())), axis=0, dtype=np.float64)
    bad = [core for core in inputs if not np.allclose(bindings[core]["x"].read(), expected, rtol=1e-5, atol=1e-4)]
    return [f"the all-reduce's result differs from numpy's sum on cores {bad}"] if bad else []


def main() -> int:
    args = common.parse_args(__doc__.splitlines()[0])
    load_before = os.getloadavg()[0]
    against_nccom()
    full_machines()
    with common.neurond_process("inf2.48xlarge") as server:
        wall_clock(server.address, server.pid, args.quick, load_before)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
