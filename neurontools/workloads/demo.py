"""The demo: a software inf2.48xlarge running a mix of model-shaped workloads, with neuron-top on it.

    python -m neurontools.workloads.demo              neuron-top in this terminal; q quits everything
    python -m neurontools.workloads.demo --headless   neuron-monitor's stream on stdout instead

Three processes, each in its own place: neurond (a child process on a temporary socket, its log in a
file), neuron-workload serving the mix (an encoder data-parallel on some cores, tensor-parallel
decoders on the others; its progress in a file), and the tool in the foreground. When the tool ends
(q in neuron-top; --duration, SIGINT or SIGTERM in headless mode) the demo stops the workloads, then
the daemon, and removes the socket and the logs: nothing it started is left behind.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from neurontools.daemon.device import topology as topo
from neurontools.workloads.daemon_process import DaemonProcess

# What runs where, per instance type: an encoder on some cores, tensor-parallel decoders on the rest.
# Chosen to load quickly: the daemon compiles every subgraph of a model when it is loaded.
MIXES = {
    "inf2.48xlarge": ["bert-large:cores=8,batch=4", "llama-2-13b:tp=8,batch=4,gen_len=64",
                      "llama-2-7b:tp=8,batch=8,gen_len=64"],
    "inf2.24xlarge": ["bert-large:cores=4,batch=4", "llama-2-13b:tp=8,batch=4,gen_len=64"],
    "inf2.8xlarge": ["bert-base:cores=1,batch=4", "llama-2-7b:tp=1,cores=1,batch=2,gen_len=64"],
    "inf2.xlarge": ["bert-base:cores=1,batch=4", "llama-2-7b:tp=1,cores=1,batch=2,gen_len=64"],
}
STOP_TIMEOUT = 20.0  # the workload process finishes its requests in flight and prints its summary
# How long the workloads get to stop by themselves (their requests in flight complete) before the daemon
# shuts down and answers what is still in flight with UNAVAILABLE: the demo ends within about 2 s.
STOP_PATIENCE = 1.0


def _tool(name: str, module: str) -> list[str]:
    """A console script next to this interpreter (how the process list names it), else `python -m`."""
    script = Path(sys.executable).with_name(name)
    return [str(script)] if script.exists() else [sys.executable, "-m", module]


def _stop(process: subprocess.Popen | None, timeout: float = STOP_TIMEOUT) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Demo:
    def __init__(self, instance_type: str, mix: list[str], logs: Path, per_call: bool = False) -> None:
        self.instance_type = instance_type
        self.mix = mix
        self.per_call = per_call
        self.logs = logs
        self.daemon = DaemonProcess(instance_type, log_path=logs / "neurond.log")
        self.workloads: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return self.daemon.address

    def start(self) -> None:
        self.daemon.start()
        with open(self.logs / "summary.json", "wb") as out, open(self.logs / "workloads.log", "wb") as err:
            self.workloads = subprocess.Popen(
                [*_tool("neuron-workload", "neurontools.workloads.cli"), "--address", self.address,
                 "--duration", "0", "--serve-while-loading", *(["--per-call"] if self.per_call else []), *self.mix],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)

    def stop(self) -> dict | None:
        """Stop the workloads, then the daemon; returns the workloads' JSON summary when there is one.
        Nothing waits long for a request to finish: after STOP_PATIENCE the daemon's shutdown answers
        the executions still in flight at once ("neurond is shutting down")."""
        print("neuron-demo: stopping workloads…", file=sys.stderr, flush=True)
        if self.workloads is not None and self.workloads.poll() is None:
            self.workloads.send_signal(signal.SIGTERM)
            try:
                self.workloads.wait(STOP_PATIENCE)
            except subprocess.TimeoutExpired:
                pass
        daemon = threading.Thread(target=self.daemon.stop, name="stop-neurond")
        daemon.start()
        _stop(self.workloads)
        daemon.join()
        try:
            return json.loads((self.logs / "summary.json").read_text())
        except (OSError, ValueError):
            return None

    def log_tail(self, lines: int = 5) -> str:
        try:
            return "\n".join((self.logs / "workloads.log").read_text().splitlines()[-lines:])
        except OSError:
            return ""


def run_interactive(demo: Demo) -> int:
    # neuron-top owns the terminal and handles Ctrl-C as quit; the demo waits for it either way.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        top = subprocess.Popen([*_tool("neuron-top", "neurontools.top"), "--address", demo.address],
                               restore_signals=True)
        signal.signal(signal.SIGTERM, lambda *_: _stop(top, 5))
        return top.wait()
    finally:
        signal.signal(signal.SIGINT, previous)


def run_headless(demo: Demo, duration: float) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    monitor = subprocess.Popen([*_tool("neuron-monitor", "neurontools.monitor.cli"), "--address", demo.address],
                               stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + duration if duration else None
    while not stop.is_set() and monitor.poll() is None:
        if deadline is not None and time.monotonic() >= deadline:
            break
        stop.wait(0.2)
    _stop(monitor, 5)
    return 0 if monitor.returncode in (0, -signal.SIGTERM) else monitor.returncode


def describe(summary: dict | None) -> str:
    if not summary:
        return "no workload summary"
    lines = []
    for w in summary["workloads"]:
        unit = "tokens" if w["kind"] == "decoder" else "inferences"
        rate, modeled = w.get(f"{unit}_per_second"), w.get(f"modeled_{unit}_per_second")
        lines.append(f"  {w['name']:<12} cores {w['cores'][0]}-{w['cores'][-1]}: {w['status']}, "
                     f"{w['requests']} requests, {w.get(unit, 0)} {unit}"
                     + (f", {rate:.1f}/s (modeled {modeled:.1f}/s)" if rate and modeled else "")
                     + (f" - {w['error']}" if w["error"] else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neurontools.workloads.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instance-type", default=topo.DEFAULT_INSTANCE_TYPE, choices=sorted(MIXES))
    parser.add_argument("--headless", action="store_true",
                        help="print neuron-monitor's stream instead of running neuron-top (CI, exporters)")
    parser.add_argument("--duration", type=float, default=0.0,
                        help="headless: seconds to run (default 0: until SIGINT or SIGTERM)")
    parser.add_argument("--mix", nargs="+", metavar="WORKLOAD",
                        help="neuron-workload specs to run instead of the instance type's mix")
    parser.add_argument("--keep-logs", action="store_true", help="keep the daemon and workload logs")
    parser.add_argument("--per-call", action="store_true",
                        help="the workloads call Execute per execution (neuron-workload --per-call), for comparison "
                             "with the default request loads inside the daemon")
    args = parser.parse_args(argv)
    logs = Path(tempfile.mkdtemp(prefix="neuron-demo-"))
    demo = Demo(args.instance_type, args.mix or MIXES[args.instance_type], logs, per_call=args.per_call)
    status = 1
    print(f"neuron-demo: starting a software {args.instance_type} and {' '.join(demo.mix)}", file=sys.stderr)
    try:
        demo.start()
        status = run_headless(demo, args.duration) if args.headless else run_interactive(demo)
    except RuntimeError as exc:
        print(f"neuron-demo: {exc}", file=sys.stderr)
    finally:
        summary = demo.stop()
        print(f"neuron-demo: stopped; the workloads ran:\n{describe(summary)}", file=sys.stderr)
        if summary is None and demo.log_tail():
            print(demo.log_tail(), file=sys.stderr)
        if args.keep_logs:
            print(f"neuron-demo: logs in {logs}", file=sys.stderr)
        else:
            shutil.rmtree(logs, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
