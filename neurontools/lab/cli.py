"""neuron-lab: a software Neuron host and a real Prometheus with the bundled alert rules, in one command.

    neuron-lab                                       # until Ctrl-C; open the printed Prometheus URL
    neuron-lab --scenario scenarios/ecc-storm.toml   # play it, print alerts as they change

It starts neurond (a child process; or uses --address), `neuron-monitor | neuron-monitor-prometheus`
(AWS's documented pipeline), and Debian's Prometheus loaded with deploy/prometheus's rules, each on a free port and in
a temporary directory; Ctrl-C (or the end of the scenario and of its alerts) stops them all and
removes the directories. With a scenario it checks the scenario's `[[expect]]` entries: exactly
the alerts declared fire, by their time, and resolve, by theirs (exit status 1 otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from neurontools import connection_options
from neurontools.client import NeuronError
from neurontools.daemon.device import topology as topo
from neurontools.lab.alert_watch import AlertWatch
from neurontools.lab.prometheus_server import PrometheusError, PrometheusServer, free_port
from neurontools.lab.expectations import all_resolved, check_expectations
from neurontools.lab.monitor_pipeline import go_duration, start_monitor_pipeline, stop_process
from neurontools.lab.rules import write_rules
from neurontools.scenarios.scenario_file import Scenario, ScenarioFileError, load_scenario
from neurontools.scenarios.timeline import play
from neurontools.workloads import catalog
from neurontools.workloads.daemon_process import DaemonProcess
from neurontools.workloads.runner import exit_now_if_requests_are_stuck

# The deploy/ scrape and evaluation intervals, and neuron-monitor's default period, in seconds.
SCRAPE_SECONDS, EVALUATION_SECONDS, MONITOR_PERIOD_SECONDS = 5.0, 15.0, 5.0
STALE_AFTER_SECONDS = 15.0  # neuron-monitor-prometheus's default
EXEC_TIMEOUT_SECONDS = 30.0  # the daemon's NEURON_RT_EXEC_TIMEOUT default (docs/workloads.md)
RESOLVE_GRACE_SECONDS = 30.0  # beyond the last resolves_by, in scenario seconds
FIRST_SCRAPE_TIMEOUT_SECONDS = 60.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neuron-lab", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", help="a scenario file to play (docs/scenarios.md)")
    parser.add_argument("--instance-type", help="the software machine (default: the scenario's, else inf2.48xlarge)")
    connection_options.add_arguments(parser, address_help="use this running neurond instead of starting one "
                                                           "(default: $NEURON_DAEMON_ADDRESS if set, else a private one)")
    parser.add_argument("--prometheus-port", type=int, default=0,
                        help="Prometheus's port on 127.0.0.1 (default 0: a free one)")
    parser.add_argument("--prometheus-binary", help="the Prometheus server to run (default: prometheus on PATH, "
                                                    "else /usr/bin/prometheus, Debian's package)")
    parser.add_argument("--time-scale", type=float, default=1.0, metavar="N",
                        help="play N times faster: the scenario's times, the rules' for: and ranges, the scrape, "
                             "evaluation and monitor periods and NEURON_RT_EXEC_TIMEOUT divided by N (default 1)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    say = lambda text: print(text, flush=True)  # noqa: E731
    warn = lambda text: print(f"neuron-lab: {text}", file=sys.stderr, flush=True)  # noqa: E731
    if args.time_scale <= 0:
        warn(f"--time-scale must be above 0 (got {args.time_scale:g})")
        return 2
    try:  # everything is checked before anything starts
        scenario = load_scenario(args.scenario).scaled(args.time_scale) if args.scenario else None
        instance_type = args.instance_type or (scenario.instance_type if scenario else topo.DEFAULT_INSTANCE_TYPE)
        topo.lookup(instance_type)
        endpoint = connection_options.given(args)
    except (ScenarioFileError, topo.UnknownInstanceType, connection_options.ConnectionOptionError) as exc:
        warn(str(exc))
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with ExitStack() as stack:
        try:
            status = _run(args, endpoint, scenario, instance_type, stop, stack, say, warn)
        except (PrometheusError, NeuronError, RuntimeError, OSError, catalog.SpecError) as exc:
            warn(str(exc))
            status = 1
    exit_now_if_requests_are_stuck(status)  # after everything is stopped and removed
    return status


def _connection_flags(args) -> list[str]:
    """The connection flags the user gave, for neuron-monitor (it reads the same environment itself)."""
    return [flag for name, flag in (("token_file", "--token-file"), ("ca_file", "--ca-file"))
            if getattr(args, name) for flag in (flag, getattr(args, name))]


def _run(args, endpoint, scenario: Scenario | None, instance_type: str, stop: threading.Event, stack: ExitStack,
         say, warn) -> int:
    scale = args.time_scale
    prometheus = PrometheusServer(targets=[], rule_files=[], port=args.prometheus_port or None,
                                  binary=args.prometheus_binary,
                                  scrape_interval=go_duration(SCRAPE_SECONDS / scale),
                                  evaluation_interval=go_duration(EVALUATION_SECONDS / scale))
    prometheus.check()  # a missing binary or a taken port stops us before anything starts
    directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="neuron-lab-")))
    if endpoint is None:
        daemon = DaemonProcess(instance_type, log_path=directory / "neurond.log")
        stack.callback(daemon.stop)
        address = endpoint = daemon.start().address
        say(f"neurond ({instance_type}) on {address}")
    else:
        address = str(endpoint)
        say(f"neurond on {address}")
    exporter_port = free_port()
    monitor, exporter = start_monitor_pipeline(directory, address, exporter_port, MONITOR_PERIOD_SECONDS / scale,
                                       STALE_AFTER_SECONDS / scale, _connection_flags(args))
    stack.callback(stop_process, monitor)
    stack.callback(stop_process, exporter)
    say(f"neuron-monitor | neuron-monitor-prometheus on http://127.0.0.1:{exporter_port}/metrics")
    prometheus.targets = [f"127.0.0.1:{exporter_port}"]
    prometheus.rule_files = [write_rules(directory, scale)]
    stack.callback(prometheus.stop)
    prometheus.start()
    say(f"Prometheus on {prometheus.url} (alerts: {prometheus.url}/alerts), rules of deploy/prometheus"
        + (f" compressed {scale:g}x" if scale != 1 else ""))
    # A counter Prometheus first sees at 1 has no increase: faults must come after the first scrape.
    prometheus.wait_for("neuron_monitor_up == 1", FIRST_SCRAPE_TIMEOUT_SECONDS, stop)
    started = time.monotonic()
    watch = AlertWatch(prometheus, started, say).start()
    stack.callback(watch.stop)
    if scenario is None:
        say("Ctrl-C stops everything")
        stop.wait()
        return 0
    if scale != 1:
        os.environ.setdefault("NEURON_RT_EXEC_TIMEOUT", f"{EXEC_TIMEOUT_SECONDS / scale:g}")
    say(f"playing {scenario.name!r} ({scenario.duration:g} s)")
    target = f"127.0.0.1:{exporter_port}"
    actions = {
        "pause-monitor": lambda: monitor.send_signal(signal.SIGSTOP),   # a hung neuron-monitor: reports go stale
        "resume-monitor": lambda: monitor.send_signal(signal.SIGCONT),
        "pause-exporter": lambda: exporter.send_signal(signal.SIGSTOP),  # a hung exporter: scrapes fail
        "resume-exporter": lambda: exporter.send_signal(signal.SIGCONT),
        "remove-target": lambda: prometheus.set_targets([]),           # gone from service discovery
        "restore-target": lambda: prometheus.set_targets([target]),
    }
    stack.callback(lambda: [p.send_signal(signal.SIGCONT) for p in (monitor, exporter) if p.poll() is None])
    result = play(scenario, endpoint, stop, lambda text: say(f"{time.strftime('%H:%M:%S')} {text}"),
                  on_clock=lambda t0: setattr(watch, "started", t0), lab=lambda action: actions[action]())
    if stop.is_set():
        return 130
    # Rule windows outlast the scenario: wait for the declared resolutions (and for the rest to settle).
    deadline = watch.started + max([e.resolves_by for e in scenario.expect], default=scenario.duration) \
        + RESOLVE_GRACE_SECONDS / scale + 10.0
    while not stop.is_set() and time.monotonic() < deadline:
        if watch.active() == 0 and all_resolved(scenario, watch.history):
            break
        stop.wait(0.5)
    watch.stop()
    # What the pipeline adds in real seconds, whatever the scale: a report, a scrape, an evaluation
    # (and the next, for a resolution), twice over for a busy host, and a poll of the alerts.
    slack = 2 * (max(1.0, MONITOR_PERIOD_SECONDS / scale) + max(1.0, SCRAPE_SECONDS / scale)
                 + 2 * max(1.0, EVALUATION_SECONDS / scale)) + 2.0
    problems = check_expectations(scenario, watch.history, slack)
    for workload in result["workloads"]:
        say(f"{workload['name']}: {workload['status']}, requests {json.dumps(workload['requests_by_status'])}")
    for problem in problems:
        warn(problem)
    say("expectations met" if not problems else f"{len(problems)} expectation(s) not met")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
