"""Workload presets: what the simulator predicts on each inf2 size, and what the daemon sustains.

1. Modeled latency and throughput of each preset on inf2.xlarge, 8xlarge, 24xlarge and 48xlarge, from
   `neuron-workload --estimate` (load, one request per replica, the modeled NeuronCore-v2 times of its
   executions) against the real `neurond` of that size. Encoders run data-parallel on every core
   (batch 1 per core, 128 tokens); decoders tensor-parallel over every core (batch 1, a 128-token
   prompt, 32 generated tokens: decode steps in the 256-position bucket). One layer per program, so
   every size runs the same programs (longer programs model slightly less per layer: the next layer's
   weights load during this one's tail). A preset whose memory plan does not fit the free HBM is
   reported as "does not fit" with the shortfall.
2. The wall-clock rate neurond sustains in timing-only mode with all 24 cores of an inf2.48xlarge busy,
   and its CPU: per mix, executions and requests per second, the cores' occupied fraction and modeled
   device time per wall second, the daemon's CPU seconds per wall second and per execution, next to
   the throughput the modeled device times would give (the reference: what the hardware would do).
   Each mix runs twice in one run: served in the daemon (request loads, the default) and per call
   (`--per-call`, one Execute per execution). The verdict is on the first: sustained throughput at
   >= 95 % of modeled, and the cores' occupied fraction within 5 points of the modeled utilization
   (a request's device time over its device and host time, back to back).

    .venv/bin/python bench/bench_workloads.py [--quick] [--sustained-only]
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import common
import psutil

from neurontools.client import Device
from neurontools.daemon.isa.cost_model import HBM_BYTES_PER_S_PER_CORE, PEAK_FLOPS_PER_S
from neurontools.workloads.architectures import DECODERS as DECODER_SHAPES
from neurontools.workloads.architectures import ENCODERS as ENCODER_SHAPES

NEURON_WORKLOAD = str(Path(sys.executable).with_name("neuron-workload"))
SIZES = {"inf2.xlarge": 2, "inf2.8xlarge": 2, "inf2.24xlarge": 12, "inf2.48xlarge": 24}  # cores
ENCODERS = ["bert-base", "bert-large"]
DECODERS = ["llama-2-7b", "llama-2-13b", "llama-2-70b", "opt-30b", "opt-66b", "opt-175b"]
BUSY_MIXES = {
    "bert-base, 24 cores data-parallel, batch 1": ["bert-base:cores=24,batch=1"],
    "bert-large, 24 cores data-parallel, batch 8": ["bert-large:cores=24,batch=8"],
    "llama-2-70b, tp=24, batch 4": ["llama-2-70b:tp=24,batch=4,gen_len=64"],
    "the demo's mix (bert-large, llama-2-13b, llama-2-7b)": ["bert-large:cores=8,batch=4",
                                                             "llama-2-13b:tp=8,batch=4,gen_len=64",
                                                             "llama-2-7b:tp=8,batch=8,gen_len=64"],
}


def estimate(address: str, spec: str) -> dict:
    done = subprocess.run([NEURON_WORKLOAD, "--address", address, "--estimate", spec], capture_output=True,
                          text=True, timeout=900)
    if not done.stdout:
        raise RuntimeError(f"neuron-workload {spec} printed no summary: {done.stderr[-2000:]}")
    return json.loads(done.stdout)["workloads"][0]


def spec_for(preset: str, cores: int) -> str:
    if preset in ENCODERS:
        return f"{preset}:cores={cores},batch=1,seq_len=128,layers_per_program=1"
    return f"{preset}:tp={cores},batch=1,seq_len=128,gen_len=32,layers_per_program=1"


def bound(w: dict) -> float:
    """The reference: an encoder request at the Tensor engine's peak (2 FLOPs per weight and token, plus
    attention's two products), a decode step at HBM bandwidth (every weight read once per token)."""
    config = w["config"]
    if w["kind"] == "encoder":
        a = ENCODER_SHAPES[config["model"]]
        tokens = config["batch"] * config["seq_len"]
        flops = a.layers * (2 * tokens * a.layer_parameters() + 4 * tokens * config["seq_len"] * a.hidden)
        return flops / PEAK_FLOPS_PER_S
    a = DECODER_SHAPES[config["model"]]
    return 2 * a.parameters() / config["tp"] / HBM_BYTES_PER_S_PER_CORE


def cell(w: dict) -> str:
    if w["status"] == "error":
        return "does not fit" if "needs" in w["error"] else f"error: {w['error'][:60]}"
    device = w["device_latency_seconds"]["p50"]
    if w["kind"] == "encoder":
        return (f"{device * 1e3:.2f} ms ({device / bound(w):.1f}x bound), "
                f"{w['modeled_inferences_per_second']:.0f} inf/s")
    first = w["device_time_to_first_token_seconds"]["p50"]
    token = w["device_inter_token_latency_seconds"]["p50"]
    return (f"TTFT {first * 1e3:.1f} ms, {token * 1e3:.1f} ms/token ({token / bound(w):.1f}x bound), "
            f"{1 / token:.1f} tok/s")


def preset_table(quick: bool) -> None:
    sizes = {"inf2.48xlarge": 24} if quick else SIZES
    presets = ["bert-base", "llama-2-7b"] if quick else ENCODERS + DECODERS
    rows: dict[str, dict[str, str]] = {p: {} for p in presets}
    for instance, cores in sizes.items():
        with common.neurond_process(instance) as server:
            for preset in presets:
                started = time.monotonic()
                w = estimate(server.address, spec_for(preset, cores))
                rows[preset][instance] = cell(w)
                tp = w["config"].get("tp")
                print(f"{instance:<14} {preset:<12} {rows[preset][instance]}"
                      + (f" (tp={tp})" if tp else "") + f"  [{time.monotonic() - started:.0f} s]", flush=True)
    print("\n| preset | " + " | ".join(sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for preset, cells in rows.items():
        print(f"| {preset} | " + " | ".join(cells.get(s, "") for s in sizes) + " |")


def sustained(name: str, mix: list[str], seconds: float, per_call: bool) -> None:
    """Run `mix` on a fresh inf2.48xlarge neurond; measure `seconds` of serving once all are loaded."""
    name = f"{name}, {'per call' if per_call else 'in the daemon'}"
    with common.neurond_process("inf2.48xlarge") as server:
        daemon = psutil.Process(server.pid)
        workload = subprocess.Popen([NEURON_WORKLOAD, "--address", server.address, "--duration", "0",
                                     "--progress-interval", "0.5", *(["--per-call"] if per_call else []), *mix],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        serving = threading.Event()

        def watch() -> None:
            for line in workload.stderr:
                if "loading" not in line and " s  " in line:  # a progress line once every workload serves
                    serving.set()

        threading.Thread(target=watch, daemon=True).start()
        try:
            if not serving.wait(600):
                raise RuntimeError(f"{name}: the workloads never started serving")
            time.sleep(2)  # past the first requests
            with Device(server.address) as device:
                before, cpu0, t0 = device.snapshot(), daemon.cpu_times(), time.monotonic()
                time.sleep(seconds)
                after, cpu1, t1 = device.snapshot(), daemon.cpu_times(), time.monotonic()
        finally:
            workload.terminate()
            out, _ = workload.communicate(timeout=120)
    summary = json.loads(out)
    wall = (after.monotonic_ns - before.monotonic_ns) / 1e9
    cores = len(after.cores)
    parts = sum(a.executions - b.executions for a, b in zip(after.cores, before.cores))
    occupied = sum(a.occupied_ns - b.occupied_ns for a, b in zip(after.cores, before.cores)) / 1e9 / wall / cores
    modeled = sum(a.device_time_ns - b.device_time_ns for a, b in zip(after.cores, before.cores)) / 1e9 / wall / cores
    requests = sum(_completed(s) for s in after.sessions) - sum(_completed(s) for s in before.sessions)
    cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / (t1 - t0)
    print(f"\n{name}: {seconds:g} s of serving, all {cores} cores")
    print(f"  executions (requests to the daemon): {requests / wall:8.0f}/s   core executions (subgraphs): "
          f"{parts / wall:8.0f}/s")
    print(f"  cores occupied: {occupied:6.1%}   modeled device time per wall second per core: {modeled:6.1%}")
    print(f"  neurond CPU: {cpu:5.2f} CPUs, {cpu / (requests / wall) * 1e6:7.0f} us per execution, "
          f"{cpu / (parts / wall) * 1e6:6.0f} us per core execution")
    failures = []
    completed = {s.tag: _completed(s) for s in after.sessions}
    for s in before.sessions:
        completed[s.tag] -= _completed(s)
    for w in summary["workloads"]:
        unit = w["kind"] == "decoder" and "tokens" or "inferences"
        rate, modeled = w.get(f"{unit}_per_second") or 0, w.get(f"modeled_{unit}_per_second") or 0
        print(f"  {w['name']:<12} {rate:9.1f} {unit}/s wall, {modeled:9.1f}/s modeled (the hardware), "
              f"device/wall {w['device_to_wall_ratio'] or 0:.2f}")
        # The same comparison without counting whole requests (a long generation cut by the window's
        # ends): the workload's executions in the window against the rate its modeled requests imply.
        ok = w["requests_by_status"]["ok"]
        implied = w["replicas"] * (w["executions"] / ok) / w["device_latency_seconds"]["mean"] if ok else 0
        executions = completed.get(w["tag"], 0) / wall
        print(f"  {'':<12} executions in the window {executions:9.1f}/s, {implied:9.1f}/s implied by its modeled "
              f"requests: {executions / implied if implied else 0:.1%}")
        if not per_call and executions < 0.95 * implied:
            failures.append(f"{w['name']} sustained {executions / implied:.1%} of its modeled rate (< 95 %)")
    if not per_call:
        utilization = sum(len(w["cores"]) * w["modeled_core_utilization"] for w in summary["workloads"]) / cores
        print(f"  cores occupied {occupied:6.1%} vs modeled utilization {utilization:6.1%} "
              f"({(occupied - utilization) * 100:+.1f} points)")
        if abs(occupied - utilization) > 0.05:
            failures.append(f"cores occupied {occupied:.1%}, modeled {utilization:.1%} (more than 5 points apart)")
    # Correct serving: every workload served without a failed request, and the daemon counted no execution
    # ending in an error status in the window (a fast failing execution would inflate the rates).
    failures += [f"{w['name']}: {w['status']}, requests {w['requests_by_status']}" for w in summary["workloads"]
                 if w["status"] != "ok"]
    errors = sum(_errors(s) for s in after.sessions) - sum(_errors(s) for s in before.sessions)
    failures += [f"{errors} executions ended in an error status"] if errors else []
    print(f"  checked: every workload ok and no execution in error: {'ok' if not failures else 'WRONG'}")
    for failure in failures:
        print(f"  WRONG: {failure}")
    print(f"result: {'WRONG: ' if failures else ''}sustained {name}: {requests / wall:.0f} executions/s, "
          f"{parts / wall:.0f} core executions/s, cores occupied {occupied:.0%}, neurond {cpu:.2f} CPUs")


def _completed(session) -> int:
    return session.stats.executions.completed


def _errors(session) -> int:
    counts = session.stats.executions
    return (counts.completed_with_err + counts.completed_with_num_err + counts.timed_out + counts.incorrect_input
            + counts.failed_to_queue)


def main() -> None:
    args = common.parse_args(__doc__, lambda parser: parser.add_argument(
        "--sustained-only", action="store_true", help="skip the table of modeled figures per instance size"))
    print(f"host: {psutil.cpu_count()} CPUs, load average {psutil.getloadavg()[0]:.1f}\n")
    if not args.sustained_only:
        preset_table(args.quick)
    mixes = dict(list(BUSY_MIXES.items())[:1]) if args.quick else BUSY_MIXES
    for name, mix in mixes.items():
        for per_call in (False, True):
            sustained(name, mix, 5 if args.quick else 20, per_call)


if __name__ == "__main__":
    main()
