"""neuron-top's cost at a 1 s interval on an inf2.48xlarge with 24 busy cores and 20 applications,
against its budgets (5% of one core, 120 MiB resident), and the time from a new snapshot to the
screen showing it.

A real neurond runs in its own process, and a workload process opens 20 runtime sessions (16 on one
core, 4 on two) that keep all 24 cores busy with timing-only kernels of about 7 ms. Then:

1. the installed `neuron-top` runs in a real 200x60 terminal (tmux, on a private tmux server: its
   own socket in a temporary directory, removed afterwards) at its default 1 s interval; after a
   warm-up, its CPU time and resident memory are sampled from /proc for --seconds;
2. neuron-top's app runs headless in this process against the same daemon for --frames reports;
   for each one, the time from the daemon taking the snapshot to the screen having been redrawn
   with it (snapshot, collector, view data and render: everything the user waits for).

The verdict also needs neuron-top to have shown what is there: the terminal shows the 20
applications' tabs, and the headless app saw all 20 applications.

    .venv/bin/python bench/bench_neuron_top.py [--seconds 30] [--frames 20] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import common  # also puts the checkout on sys.path

ROOT = common.ROOT

BUDGET_CPU_PERCENT = 5.0  # of one core
BUDGET_RSS_MIB = 120.0
NEURON_TOP = Path(sys.executable).parent / "neuron-top"
KERNEL_REPEAT = 8000  # matmul+GELU steps: about 6.7 ms of modeled device time per execution
WARM_UP_SECONDS = 5.0


# --- the workload (its own process: `bench_neuron_top.py --workload ADDRESS`) -------------------


def _layout() -> list[tuple[str, str]]:
    """20 applications on 24 cores: 16 on one core, 4 tensor-parallel ones on two."""
    return [(str(core), f"bert-{core}") for core in range(16)] + \
        [(f"{first}-{first + 1}", f"llama-tp2-{i}") for i, first in enumerate(range(16, 24, 2))]


def run_workload(address: str) -> None:
    from neurontools.client import Session
    from neurontools.kernels.examples import mlp_program

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    ready = threading.Barrier(len(_layout()) + 1)

    def application(cores: str, tag: str) -> None:
        with Session(address, visible_cores=cores, tag=tag, command=f"python serve.py --tag {tag}") as session:
            work = []
            for core in session.core_ids:
                model = session.load_model(f"{tag}-nc{core}.neff", {core: mlp_program(repeat=KERNEL_REPEAT)})
                work.append((model, dict(xT=session.allocate((128, 64), "float32", core_id=core),
                                         out=session.allocate((64, 256), "float32", core_id=core),
                                         rowmax=session.allocate((64, 1), "float32", core_id=core))))
            ready.wait()
            # one thread per core, as a serving process would, so a two-core application keeps both busy
            def drive(model, tensors) -> None:
                while not stop.is_set():
                    model.execute(**tensors, timing_only=True)

            threads = [threading.Thread(target=drive, args=item) for item in work]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

    threads = [threading.Thread(target=application, args=item) for item in _layout()]
    for thread in threads:
        thread.start()
    ready.wait()
    print("ready", flush=True)
    for thread in threads:
        thread.join()


# --- 1. a real terminal ------------------------------------------------------------------------


def measure_in_terminal(address: str, seconds: float) -> tuple[float, float, float, str]:
    """CPU % of one core, mean and peak RSS in MiB of neuron-top in a 200x60 tmux pane; its last screen."""
    with tempfile.TemporaryDirectory(prefix="bench-tmux-") as tmp:
        tmux = ["tmux", "-S", os.path.join(tmp, "socket"), "-f", os.devnull]  # a server of our own
        try:
            return _measure_in(tmux, address, seconds)
        finally:
            subprocess.run([*tmux, "kill-server"], capture_output=True)


def _measure_in(tmux: list[str], address: str, seconds: float) -> tuple[float, float, float, str]:
    import psutil

    name = "neuron-top"
    command = f"unset COLUMNS LINES; exec {NEURON_TOP} --address {address}"
    subprocess.run([*tmux, "new-session", "-d", "-s", name, "-x", "200", "-y", "60", command], check=True)
    pid = int(subprocess.run([*tmux, "display", "-p", "-t", name, "#{pane_pid}"], capture_output=True,
                             text=True, check=True).stdout)
    process = psutil.Process(pid)
    time.sleep(WARM_UP_SECONDS)  # start-up (imports, first contact) is not the steady state
    before, started = process.cpu_times(), time.monotonic()
    rss = []
    while time.monotonic() - started < seconds:
        rss.append(process.memory_info().rss / 2**20)
        time.sleep(1.0)
    after, elapsed = process.cpu_times(), time.monotonic() - started
    screen = subprocess.run([*tmux, "capture-pane", "-p", "-t", name], capture_output=True, text=True).stdout
    cpu = (after.user + after.system - before.user - before.system) / elapsed * 100
    return cpu, statistics.mean(rss), max(rss), screen


# --- 2. snapshot to screen ---------------------------------------------------------------------


def measure_latency(address: str, frames: int) -> tuple[list[float], float, int]:
    """Seconds from each snapshot to its screen; the mean core utilization and applications seen."""
    from neurontools.top.app import NeuronTopApp
    from neurontools.top.sources.live import LiveSource

    latencies: list[float] = []
    seen: list[tuple[float, int]] = []

    async def body() -> None:
        source = LiveSource(address, 1.0)
        app = NeuronTopApp(source)
        async with app.run_test(size=(200, 60)) as pilot:
            shown = 0
            while len(latencies) < frames:
                await pilot.pause(0.01)
                if app.frames_shown > shown:
                    shown = app.frames_shown
                    if shown > 2:  # the first-contact report covers milliseconds, not a period
                        latencies.append(app.last_latency)
                        seen.append((app.overview.average_utilization, len(app.overview.tabs) - 1))
        source.close()

    asyncio.run(body())
    return latencies, statistics.mean(u for u, _ in seen), min(n for _, n in seen)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="CPU and RSS sampling time (default 30)")
    parser.add_argument("--frames", type=int, default=20, help="reports timed snapshot-to-screen (default 20)")
    parser.add_argument("--quick", action="store_true", help="10 s and 5 reports (smoke test)")
    parser.add_argument("--workload", metavar="ADDRESS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.workload:
        run_workload(args.workload)
        return 0
    if shutil.which("tmux") is None:
        raise SystemExit("bench_neuron_top needs tmux (scripts/install-system-deps.sh)")
    seconds, frames = (10.0, 5) if args.quick else (args.seconds, args.frames)

    load_before = os.getloadavg()[0]
    with common.neurond_process("inf2.48xlarge") as server:
        workload = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--workload", server.address],
                                    stdout=subprocess.PIPE, text=True, cwd=ROOT)
        try:
            if workload.stdout.readline().strip() != "ready":
                raise SystemExit("the workload did not start")
            cpu, rss_mean, rss_peak, screen = measure_in_terminal(server.address, seconds)
            latencies, utilization, applications = measure_latency(server.address, frames)
        finally:
            workload.send_signal(signal.SIGTERM)
            workload.wait(timeout=60)

    shown = "[20]:" in screen or "»" in screen  # the last tab, or the marker of tabs beyond the screen
    if not shown:
        print("WRONG: the terminal did not show the application tabs:\n" + screen)
    right = shown and applications == len(_layout())
    cuts = sorted(latencies)
    p50, p99 = statistics.median(cuts), cuts[min(len(cuts) - 1, round(0.99 * (len(cuts) - 1)))]
    print(f"neuron-top on inf2.48xlarge: 24 cores at {utilization:.0f}% mean utilization, {applications} "
          f"applications, 1 s interval, 200x60 terminal")
    print(f"{os.cpu_count()} CPUs, 1-min load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after "
          "(the workload and neurond run on the same CPUs)")
    print(f"{'figure':<44} {'measured':>10} {'budget':>10}  verdict")
    cpu_ok, rss_ok = cpu <= BUDGET_CPU_PERCENT, rss_peak <= BUDGET_RSS_MIB
    print(f"{f'CPU, % of one core (mean over {seconds:.0f} s)':<44} {cpu:>10.2f} {BUDGET_CPU_PERCENT:>10.1f}  "
          f"{'ok' if cpu_ok else 'OVER BUDGET'}")
    print(f"{'resident memory, MiB (peak; mean ' + f'{rss_mean:.1f})':<44} {rss_peak:>10.1f} {BUDGET_RSS_MIB:>10.0f}  "
          f"{'ok' if rss_ok else 'OVER BUDGET'}")
    print(f"{f'snapshot to screen, ms (p50 of {len(latencies)})':<44} {p50 * 1e3:>10.1f} {'':>10}")
    print(f"{'snapshot to screen, ms (p99; max ' + f'{cuts[-1] * 1e3:.1f})':<44} {p99 * 1e3:>10.1f} {'':>10}")
    print(f"shown: the terminal's application tabs {'ok' if shown else 'missing'}, {applications} of "
          f"{len(_layout())} applications in the headless app: {'ok' if right else 'WRONG'}")
    common.print_result(f"neuron-top {cpu:.2f}% of one core ({BUDGET_CPU_PERCENT:.0f}% budget), peak RSS "
                        f"{rss_peak:.1f} MiB ({BUDGET_RSS_MIB:.0f} MiB budget), snapshot to screen p50 "
                        f"{p50 * 1e3:.1f} ms; shown {'ok' if right else 'WRONG'}: "
                        f"{common.verdict(cpu_ok and rss_ok) if right else 'WRONG'}")
    return 0 if cpu_ok and rss_ok and right else 1


if __name__ == "__main__":
    raise SystemExit(main())
