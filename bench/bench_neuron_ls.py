"""neuron-ls wall time on an inf2.48xlarge, interpreter start-up included, against the 300 ms budget.

Starts an inf2.48xlarge neurond in this process, then times N runs of the real `neuron-ls` command
(a subprocess, as a user or a monitoring agent runs it) per mode, interleaved with N runs of
`python -c pass` from the same interpreter as the floor any Python tool pays. Prints p50 and p90 of
each, neuron-ls's p50 as a multiple of the floor, and whether p90 is within the budget. The verdict
also needs what neuron-ls printed to be right: the JSON lists the machine's 12 devices with their
24 cores, and the table has a row per device.

    .venv/bin/python bench/bench_neuron_ls.py [--runs 40] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import common  # also puts the checkout on sys.path

from neurontools.testing import embedded_daemon

ROOT = common.ROOT
DEVICES, CORES = 12, 24  # inf2.48xlarge

BUDGET_SECONDS = 0.300
MODES = {"default": [], "--show-all-procs": ["--show-all-procs"], "--json-output": ["--json-output"]}
_SCRIPT = Path(sys.executable).parent / "neuron-ls"
NEURON_LS = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "neurontools.ls"]
FLOOR = [sys.executable, "-c", "pass"]


def wall_time(command: list[str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {result.stderr.decode().strip()}")
    return elapsed


def output_is_right(address: str) -> bool:
    """neuron-ls's JSON lists the 12 devices with 24 cores in all, and its table shows every device."""
    listing = json.loads(subprocess.run([*NEURON_LS, "--address", address, "--json-output"], capture_output=True,
                                        text=True, check=True, cwd=ROOT).stdout)
    table = subprocess.run([*NEURON_LS, "--address", address], capture_output=True, text=True, check=True,
                           cwd=ROOT).stdout
    devices = [line for line in table.splitlines() if line.startswith("| ") and line.split("|")[1].strip().isdigit()]
    return (len(listing) == DEVICES and sum(device["nc_count"] for device in listing) == CORES
            and len(devices) == DEVICES)


def percentiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=10, method="inclusive")
    return statistics.median(samples), cuts[8]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="timed runs per command (default 40)")
    parser.add_argument("--quick", action="store_true", help="10 runs per command (smoke test)")
    args = parser.parse_args()
    runs = 10 if args.quick else args.runs

    load_before = os.getloadavg()[0]
    with embedded_daemon(instance_type="inf2.48xlarge", instance_id="i-0843f604e49a05017") as address:
        commands = {name: [*NEURON_LS, "--address", address, *flags] for name, flags in MODES.items()}
        for command in commands.values():
            wall_time(command)  # warm the page cache and the daemon
        right = output_is_right(address)
        samples: dict[str, list[float]] = {"python -c pass": [], **{name: [] for name in commands}}
        for _ in range(runs):  # interleaved, so drift in machine load hits every command alike
            samples["python -c pass"].append(wall_time(FLOOR))
            for name, command in commands.items():
                samples[name].append(wall_time(command))

    floor_p50, _ = percentiles(samples["python -c pass"])
    print(f"neuron-ls on inf2.48xlarge (12 devices), {runs} runs each, wall time incl. interpreter start-up")
    print(f"command: {' '.join(NEURON_LS)}; {os.cpu_count()} CPUs, 1-min load average "
          f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after (other work inflates every row alike)")
    print(f"{'command':<28} {'p50 ms':>8} {'p90 ms':>8} {'x floor':>8} {'budget ms':>10}  verdict")
    within = True
    figures = []
    for name, times in samples.items():
        p50, p90 = percentiles(times)
        if name == "python -c pass":
            print(f"{name:<28} {p50 * 1e3:>8.1f} {p90 * 1e3:>8.1f} {1:>8.2f} {'':>10}  (reference floor)")
            continue
        ok = p90 <= BUDGET_SECONDS
        within &= ok
        figures.append(f"{name} {p90 * 1e3:.0f}")
        print(f"{'neuron-ls ' + name:<28} {p50 * 1e3:>8.1f} {p90 * 1e3:>8.1f} {p50 / floor_p50:>8.2f} "
              f"{BUDGET_SECONDS * 1e3:>10.0f}  {'ok' if ok else 'OVER BUDGET'} (p90)")
    print(f"output: {DEVICES} devices and {CORES} cores listed in JSON and table: {'ok' if right else 'WRONG'}")
    common.print_result(f"neuron-ls p90 ms: {', '.join(figures)} vs budget {BUDGET_SECONDS * 1e3:.0f} ms "
                        f"(python -c pass p50 {floor_p50 * 1e3:.0f} ms); output {'ok' if right else 'WRONG'}: "
                        f"{common.verdict(within) if right else 'WRONG'}")
    return 0 if within and right else 1


if __name__ == "__main__":
    raise SystemExit(main())
