"""neuron-workload: run model-shaped workloads on neurond and summarize them in JSON."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from neurontools import addresses, connection_options
from neurontools.client import Device, NeuronError
from neurontools.daemon.device import topology as topo
from neurontools.workloads import catalog
from neurontools.workloads.architectures import DECODERS, ENCODERS
from neurontools.workloads.resnet import VISION
from neurontools.workloads.daemon_process import DaemonProcess
from neurontools.workloads.runner import WorkloadRun, WorkloadRunner, exit_now_if_requests_are_stuck
from neurontools.workloads.summary import served_figures, summary

DESCRIPTION = """\
Run model-shaped workloads (BERT-style encoders and ResNet-50 data-parallel, decoder LLMs tensor-parallel) on a
neurond, print progress on stderr and a JSON summary on stdout: latency percentiles, inferences or
tokens per second, modeled device time next to wall time, HBM used by category.

A WORKLOAD is a preset name with optional settings: NAME[:key=value,...], keys cores (a count or a
list such as 0-3), tp, batch, seq_len, gen_len, dtype, layers, layers_per_program, image, rate, tag. Several make a
mix; each gets its own runtime session and cores.
"""

EPILOG = """\
examples:
  neuron-workload bert-base                              an embedded inf2.48xlarge, 10 s of BERT-base
  neuron-workload --instance-type inf2.24xlarge --estimate llama-2-70b
                                                         does it fit, and how fast would it run?
  neuron-workload --address unix:///tmp/n.sock --duration 0 bert-large:cores=4,batch=8 llama-2-13b:tp=8
  neuron-workload --compute llama-tiny:tp=2              compute mode, checked against numpy

presets: {presets}
"""


STOP_GRACE_SECONDS = 2.0  # how long the end of a run waits for the requests in flight


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neuron-workload", description=DESCRIPTION,
                                     epilog=EPILOG.format(presets=", ".join(catalog.presets())),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workloads", nargs="*", metavar="WORKLOAD")
    where = parser.add_argument_group("daemon")
    connection_options.add_arguments(where, address_help=f"a running neurond (default ${addresses.ADDRESS_ENV}; "
                                     "without either, a private neurond child process on a temporary socket)")
    where.add_argument("--instance-type", help="the private daemon's instance type (default inf2.48xlarge); "
                                               "only without --address")
    shape = parser.add_argument_group("defaults for every workload")
    shape.add_argument("--tp", type=int, help="tensor-parallel degree of decoders (default: the smallest that fits)")
    shape.add_argument("--batch", type=int, default=1, help="sequences per request and core group (default 1)")
    shape.add_argument("--seq-len", type=int, help="sequence length; a decoder's prompt length (default 128)")
    shape.add_argument("--gen-len", type=int, default=32, help="tokens a decoder generates per request (default 32)")
    shape.add_argument("--dtype", default="bfloat16", help="weights and activations (default bfloat16)")
    shape.add_argument("--layers", type=int, help="layers of every preset (default: its architecture's)")
    shape.add_argument("--layers-per-program", type=int, help="layers per stage program (default: by size)")
    shape.add_argument("--image", type=int, help="image size of vision presets in pixels (default: the preset's, 224)")
    shape.add_argument("--rate", type=float, help="requests per second per workload (default: back to back)")
    shape.add_argument("--tag", help="process tag of the sessions (default: the workload's name)")
    run = parser.add_argument_group("run")
    run.add_argument("--duration", type=float, default=10.0,
                     help="seconds of serving after loading (default 10; 0: until SIGINT/SIGTERM)")
    run.add_argument("--estimate", action="store_true",
                     help="load, serve one request per replica, summarize: fit and modeled speed in seconds")
    run.add_argument("--compute", action="store_true",
                     help="compute mode: real data, checked against numpy (use small presets); one Execute call "
                          "per execution")
    run.add_argument("--per-call", action="store_true",
                     help="timing-only requests as one Execute call per execution from the client, instead of "
                          "request loads inside the daemon (the default): for comparison, or to exercise the RPCs")
    run.add_argument("--serve-while-loading", action="store_true",
                     help="serve each workload as soon as it is loaded (by default serving starts once all are "
                          "loaded: a model's compile holds up the daemon and would distort the others' figures)")
    run.add_argument("--max-errors", type=int, metavar="N",
                     help="stop a workload after N failed requests (default: count them and serve on, as a "
                          "serving application does)")
    run.add_argument("--profile", metavar="DIR",
                     help="before stopping, write the profile of each model the workloads executed (each stage "
                          "program, its first core) to DIR/<model>.profile.json (neuron-profile view reads them)")
    run.add_argument("--progress-interval", type=float, default=2.0, metavar="SECONDS")
    parser.add_argument("--list", action="store_true", help="list the presets and exit")
    return parser


def list_presets() -> str:
    lines = [f"{'preset':<16} {'kind':<8} {'parameters':>16}  shape"]
    for a in ENCODERS.values():
        lines.append(f"{a.name:<16} {'encoder':<8} {a.parameters():>16,}  {a.layers} layers, hidden {a.hidden}, "
                     f"{a.heads} heads, MLP {a.intermediate}")
    for d in DECODERS.values():
        lines.append(f"{d.name:<16} {'decoder':<8} {d.parameters():>16,}  {d.layers} layers, hidden {d.hidden}, "
                     f"{d.heads} heads ({d.kv_heads} KV), MLP {d.intermediate}, vocabulary {d.vocab}")
    for v in VISION.values():
        lines.append(f"{v.name:<16} {'vision':<8} {v.parameters():>16,}  bottleneck blocks "
                     f"{'-'.join(map(str, v.blocks))}, {v.image_size} x {v.image_size} images, {v.classes} classes")
    return "\n".join(lines) + "\n"


def progress_line(elapsed: float, runner: WorkloadRunner) -> str:
    parts = [f"{elapsed:6.1f} s"]
    for name, run in runner.runs.items():
        parts.append(f"{name}: {_state(run)}")
    return "  ".join(parts)


def _state(run: WorkloadRun) -> str:
    if run.error:
        return "failed"
    failed = sum(run.failed.values())
    errors = f", {failed} failed" if failed else ""
    if not run.loaded.is_set():
        return "loading"
    with run.lock:
        records, loads = list(run.records), list(run.loads)
    served = served_figures(run, records, loads)
    ok, items = served["ok"], served["items"]
    if not ok or run.started is None:
        return "running"
    rate = items / max(1e-9, time.monotonic() - run.started)
    latency = served["latency_seconds"]["p50"]
    return f"{ok} requests{errors}, {items} {run.workload.unit} ({rate:.1f}/s, p50 {latency * 1e3:.1f} ms)"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list:
        sys.stdout.write(list_presets())
        return 0
    if not args.workloads:
        print("neuron-workload: name at least one WORKLOAD (--list shows the presets)", file=sys.stderr)
        return 2
    address = args.address or os.environ.get(addresses.ADDRESS_ENV)
    if address and args.instance_type:
        print("neuron-workload: --instance-type starts an embedded daemon; it does not go with --address",
              file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        if address:
            status = _run(args, connection_options.from_arguments(args), stop)
        else:
            instance_type = args.instance_type or topo.DEFAULT_INSTANCE_TYPE
            topo.lookup(instance_type)  # an unknown type fails here, not inside the child
            with DaemonProcess(instance_type) as daemon:
                status = _run(args, daemon.address, stop)
    except (topo.UnknownInstanceType, catalog.SpecError, NeuronError, ValueError, RuntimeError) as exc:
        # ValueError includes connection_options.ConnectionOptionError (an unsafe token file, ...)
        print(f"neuron-workload: {exc}", file=sys.stderr)
        return 2
    exit_now_if_requests_are_stuck(status)  # a request stuck on a hung core must not hold the exit
    return status


def _run(args, address: str | connection_options.DaemonEndpoint, stop: threading.Event) -> int:
    defaults = catalog.Settings(tp=args.tp, batch=args.batch, seq_len=args.seq_len, gen_len=args.gen_len,
                                dtype=args.dtype, layers=args.layers, layers_per_program=args.layers_per_program,
                                image=args.image, rate=args.rate,
                                tag=args.tag, compute=args.compute)
    with Device(address) as device:
        topology = device.topology()
        placer = catalog.Placer.for_this_process(device.snapshot())
    log = lambda text: print(f"neuron-workload: {text}", file=sys.stderr, flush=True)  # noqa: E731
    profile = (lambda session_id: _write_profiles(address, session_id, Path(args.profile), log)) if args.profile else None
    runner = WorkloadRunner(address, on_error=lambda name, message: log(f"{name}: {message}"), before_unload=profile,
                            per_call=args.per_call)
    for text in args.workloads:
        spec = catalog.parse_spec(text, defaults)
        log(f"building {spec.preset} programs")
        workload = catalog.build(spec, placer)
        name = runner.add(workload, tag=spec.settings.tag, rate=spec.settings.rate, limit=1 if args.estimate else None,
                          max_errors=args.max_errors)
        log(f"{name} on NeuronCores {_ranges(workload.cores)}: {json.dumps(workload.describe())}")
    started = time.monotonic()
    runner.start_all(serve=args.serve_while_loading)
    while not stop.is_set() and not runner.wait_loaded(timeout=args.progress_interval):
        log(progress_line(time.monotonic() - started, runner))
    runner.serve_all()
    serving = time.monotonic()
    deadline = None if args.estimate or not args.duration else serving + args.duration
    next_progress = time.monotonic() + args.progress_interval
    while not stop.is_set() and any(run.running for run in runner.runs.values()):
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            break
        if now >= next_progress:
            log(progress_line(now - started, runner))
            next_progress += args.progress_interval
        stop.wait(0.1)
    # A request stuck on a hung core would hold the run up to NEURON_RT_EXEC_TIMEOUT: keep to --duration.
    runner.stop_all(timeout=None if args.estimate else STOP_GRACE_SECONDS)
    document = summary(runner, instance_type=topology.instance.instance_type, address=str(address),
                       mode="compute" if args.compute else "timing-only",
                       serving_seconds=round(time.monotonic() - serving, 3))
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 1 if any(run.error for run in runner.runs.values()) else 0


def _write_profiles(address, session_id: int, directory: Path, log) -> None:
    """Each model a workload's session executed, as neuron-profile capture --model would write it."""
    from neurontools.profile.fetch import fetch_profile  # noqa: PLC0415 (only with --profile)
    from neurontools.profile.profile_file import write_profile  # noqa: PLC0415

    with Device(address) as device:
        directory.mkdir(parents=True, exist_ok=True)
        for model in device.snapshot().models:
            if model.session_id == session_id and model.executions:
                _, profile = fetch_profile(device, model.model_id)
                path = directory / f"{model.name}.profile.json"
                write_profile(path, profile)
                log(f"profile of {model.name} ({profile['device_time_ns'] / 1000:,.1f} µs) -> {path}")


def _ranges(cores: list[int]) -> str:
    return f"{cores[0]}-{cores[-1]}" if len(cores) > 1 else str(cores[0])


if __name__ == "__main__":
    sys.exit(main())
