"""neuron-fleet: a fleet of software Inferentia2 hosts, each with its own exporter, in one real Prometheus.

    neuron-fleet up --hosts 8 --instance-type inf2.48xlarge
    neuron-fleet up --mix inf2.xlarge=20,inf2.48xlarge=12
    neuron-fleet targets        # the file_sd file, for your own Prometheus
    neuron-fleet down           # stops a fleet started in another terminal

`up` starts one neurond per host (its own socket and identity: instance id, hostname, AZ), its
`neuron-monitor | neuron-monitor-prometheus` on a free port, keeps every core busy (an in-daemon
closed loop), writes a file_sd discovery file, starts Debian's Prometheus on it with deploy/'s rules
and the fleet's, prints where everything listens and a status line per host until Ctrl-C or `down`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

from neurontools.client import Device, NeuronError
from neurontools.fleet.discovery import write_targets
from neurontools.fleet.host import Host
from neurontools.fleet.scenario import FleetScenario, FleetScenarioError, host_problems, load_fleet_scenario
from neurontools.fleet.spec import (FleetSpecError, assign_workloads, check_capacity, check_placement, fleet_hosts,
                                   runtime_directory)
from neurontools.lab.alert_watch import AlertWatch
from neurontools.lab.cli import (EVALUATION_SECONDS, EXEC_TIMEOUT_SECONDS, FIRST_SCRAPE_TIMEOUT_SECONDS,
                                 MONITOR_PERIOD_SECONDS, RESOLVE_GRACE_SECONDS, SCRAPE_SECONDS, STALE_AFTER_SECONDS)
from neurontools.lab.expectations import all_resolved, check_expectations
from neurontools.lab.monitor_pipeline import go_duration
from neurontools.lab.prometheus_server import PrometheusError, PrometheusServer
from neurontools.lab.rules import RULES, write_rules
from neurontools.fleet.scenario import FLEET_RULES
from neurontools.processes import pid_alive

STATE = "state.json"
START_WORKERS = 4  # hosts started at once: daemon start-up is CPU-bound


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neuron-fleet", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start a fleet and its Prometheus; runs until Ctrl-C or `down`")
    up.add_argument("--hosts", type=int, help="number of hosts (all of --instance-type)")
    up.add_argument("--instance-type", default="inf2.48xlarge", help="every host's type (default inf2.48xlarge)")
    up.add_argument("--mix", metavar="TYPE=N,...", help="hosts by type, e.g. inf2.xlarge=20,inf2.48xlarge=12")
    up.add_argument("--name", default="fleet", help="the fleet's name: hostnames are NAME-000, NAME-001, ...")
    up.add_argument("--idle", action="store_true", help="do not load the cores (default: every core busy)")
    up.add_argument("--workload", action="append", default=[], metavar="[TARGET=]SPEC",
                    help="a neuron-workload preset the hosts serve instead of the busy kernel: every host, or "
                         "TARGET = a host, group (instance type or --mix entry) or availability zone; repeatable, "
                         "e.g. --workload us-east-2a=bert-base:cores=2 --workload fleet-003=llama-2-7b:tp=2")
    up.add_argument("--monitor-period", type=float, default=5.0, metavar="S",
                    help="neuron-monitor's period in seconds (default 5, AWS's)")
    up.add_argument("--prometheus-port", type=int, default=0, help="Prometheus's port (default 0: a free one)")
    up.add_argument("--scenario", help="a fleet scenario to play (docs/fleet.md); its hosts replace --hosts/--mix")
    up.add_argument("--time-scale", type=float, default=1.0, metavar="N",
                    help="play N times faster: the scenario's times, the rules' for: and ranges, the scrape, "
                         "evaluation and monitor periods divided by N (default 1)")
    up.add_argument("--status-every", type=float, default=5.0, metavar="S",
                    help="seconds between status tables (default 5; 0: none)")
    commands.add_parser("down", help="stop the fleet `up` started, and everything it started")
    commands.add_parser("targets", help="print the running fleet's file_sd discovery file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    state_dir = Path(runtime_directory())
    if args.command == "targets":
        return _targets(state_dir)
    if args.command == "down":
        return _down(state_dir)
    return _up(args, state_dir)


def _warn(text: str) -> None:
    print(f"neuron-fleet: {text}", file=sys.stderr, flush=True)


def _say(text: str) -> None:
    print(text, flush=True)


def _read_state(state_dir: Path) -> dict | None:
    try:
        return json.loads((state_dir / STATE).read_text())
    except (OSError, ValueError):
        return None


def _targets(state_dir: Path) -> int:
    state = _read_state(state_dir)
    if state is None or not pid_alive(state["pid"]):
        _warn(f"no fleet is running (no live state in {state_dir}): start one with `neuron-fleet up`")
        return 1
    sys.stdout.write(Path(state["targets_file"]).read_text())
    return 0


def _down(state_dir: Path) -> int:
    state = _read_state(state_dir)
    if state is None:
        _warn(f"no fleet is running (no state in {state_dir})")
        return 1
    if pid_alive(state["pid"]):
        os.kill(state["pid"], signal.SIGTERM)  # `up` stops its hosts and Prometheus in order
        deadline = time.monotonic() + 60
        while pid_alive(state["pid"]) and time.monotonic() < deadline:
            time.sleep(0.2)
    leftover = [pid for pid in state.get("children", []) if pid_alive(pid)]
    for pid in leftover:  # `up` was killed outright: end what it started, by pid
        os.kill(pid, signal.SIGKILL)
    for path in state.get("directories", []):
        shutil.rmtree(path, ignore_errors=True)
    (state_dir / STATE).unlink(missing_ok=True)
    _say("fleet stopped" + (f" ({len(leftover)} leftover processes killed)" if leftover else ""))
    return 0


def _up(args, state_dir: Path) -> int:
    if args.time_scale <= 0:
        _warn(f"--time-scale must be above 0 (got {args.time_scale:g})")
        return 2
    try:  # everything is checked before anything starts
        scenario = load_fleet_scenario(args.scenario).scaled(args.time_scale) if args.scenario else None
        specs = scenario.hosts if scenario else fleet_hosts(hosts=args.hosts, instance_type=args.instance_type,
                                                            mix=args.mix, name=args.name)
        args.workloads_of = assign_workloads(specs, args.workload)
        if scenario is not None:  # the scenario's workloads, then --workload's
            args.workloads_of = {host: scenario.workloads[host] + extra for host, extra in args.workloads_of.items()}
            for spec in specs:  # together, on the host's cores
                check_placement(spec, args.workloads_of[spec.name], "the scenario's workloads and --workload")
        deployed = {name for event in (scenario.events if scenario else []) if event.workloads for name in event.hosts}
        check_capacity(len(specs), sum(1 for name, specs_of in args.workloads_of.items() if specs_of or name in deployed))
    except (FleetSpecError, FleetScenarioError) as exc:
        _warn(str(exc))
        return 2
    state = _read_state(state_dir)
    if state is not None and pid_alive(state["pid"]):
        _warn(f"a fleet is already running (pid {state['pid']}): `neuron-fleet down` stops it")
        return 1
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with ExitStack() as stack:
        try:
            return _run(args, specs, scenario, state_dir, stop, stack)
        except (FleetSpecError, PrometheusError, NeuronError, RuntimeError, OSError) as exc:
            _warn(str(exc))
            return 1
        finally:
            _say("stopping the fleet")


def _run(args, specs, scenario: FleetScenario | None, state_dir: Path, stop: threading.Event,
         stack: ExitStack) -> int:
    scale = args.time_scale
    directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="neuron-fleet-")))
    prometheus = PrometheusServer(targets=[], rule_files=[], port=args.prometheus_port or None,
                                  file_sd=directory / "targets.json",
                                  scrape_interval=go_duration(args.monitor_period / scale),
                                  evaluation_interval=go_duration(EVALUATION_SECONDS / scale))
    prometheus.check()
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    stack.callback(lambda: (state_dir / STATE).unlink(missing_ok=True))
    if scale != 1:  # the sessions holding the loads time executions out sooner too
        os.environ.setdefault("NEURON_RT_EXEC_TIMEOUT", f"{EXEC_TIMEOUT_SECONDS / scale:g}")
    hosts = [Host(spec, directory / spec.name, monitor_period=args.monitor_period / scale, busy=not args.idle,
                  stale_after=max(1.0, STALE_AFTER_SECONDS / scale), workloads=args.workloads_of[spec.name])
             for spec in specs]
    stack.callback(lambda: _stop_all(hosts))

    def save_state() -> None:
        children = [pid for host in hosts for pid in host.pids()]
        children += [prometheus.process.pid] if prometheus.process else []
        dirs = [str(directory)] + [str(h.daemon.directory) for h in hosts]
        dirs += [str(prometheus.directory)] if prometheus.directory else []
        (state_dir / STATE).write_text(json.dumps({
            "pid": os.getpid(), "targets_file": str(directory / "targets.json"), "prometheus": prometheus.url,
            "children": children, "directories": dirs}))

    _say(f"starting {len(hosts)} hosts ({_describe(specs)})")
    with ThreadPoolExecutor(START_WORKERS) as pool:
        for host, future in zip(hosts, [pool.submit(h.start) for h in hosts]):
            future.result()  # the first host that cannot start stops the fleet with its reason
            if stop.is_set():
                return 130
    write_targets(directory / "targets.json", hosts)
    prometheus.rule_files = [write_rules(directory, scale, RULES), write_rules(directory, scale, FLEET_RULES)]
    stack.callback(prometheus.stop)
    prometheus.start()
    save_state()
    for host in hosts:
        _say(f"{host.spec.name:<12} {host.spec.instance_type:<14} {host.spec.availability_zone:<11} "
             f"neurond {host.daemon.address}  exporter http://{host.target}/metrics")
    _say(f"discovery file {directory / 'targets.json'} (neuron-fleet targets)")
    _say(f"Prometheus on {prometheus.url} (targets: {prometheus.url}/targets, alerts: {prometheus.url}/alerts)")
    _say("Ctrl-C or `neuron-fleet down` stops everything")
    if scenario is not None:
        return _play(scenario, hosts, prometheus, scale, stop, stack, save_state)
    reported_down: set[str] = set()
    while not stop.wait(args.status_every or 1.0):
        statuses = [host.status() for host in hosts]
        for status in statuses:
            if not status["up"] and status["host"] not in reported_down:
                reported_down.add(status["host"])
                _warn(f"{status['host']} is down ({', '.join(status['dead'])} exited); the rest keep running")
            elif status["up"] and status["host"] in reported_down:
                reported_down.discard(status["host"])
                _say(f"{status['host']} is up again")
        if args.status_every:
            _print_status(statuses)
    return 0


def _play(scenario: FleetScenario, hosts: list[Host], prometheus: PrometheusServer, scale: float,
          stop: threading.Event, stack: ExitStack, save_state) -> int:
    """Play the timeline, then check the declared alerts fired and resolved (lab's rules for that)."""
    # A counter Prometheus first sees at 1 has no increase: events come after every host's first scrape.
    prometheus.wait_for(f"count(neuron_monitor_up == 1) == {len(hosts)}", FIRST_SCRAPE_TIMEOUT_SECONDS, stop)
    by_name = {host.spec.name: host for host in hosts}
    started = time.monotonic()
    watch = AlertWatch(prometheus, started, _say).start()
    stack.callback(watch.stop)
    _say(f"playing {scenario.name!r} ({scenario.duration:g} s)")
    for event in scenario.events:
        if stop.wait(max(0.0, started + event.at - time.monotonic())):
            return 130
        _say(f"{time.strftime('%H:%M:%S')} t={event.at:g}s {event.action} on {', '.join(event.hosts)}"
             + (f": {' '.join(event.workloads)}" if event.workloads else ""))
        with ThreadPoolExecutor(START_WORKERS) as pool:  # an event on many hosts: at once, as a fleet tool does
            list(pool.map(lambda name: _act_on(event, by_name[name]), event.hosts))
        save_state()  # restarted hosts have new processes and directories: `down` must know them
    deadline = started + max([e.resolves_by for e in scenario.expect], default=scenario.duration) \
        + RESOLVE_GRACE_SECONDS / scale + 10.0
    while not stop.is_set() and time.monotonic() < deadline:
        if time.monotonic() > started + scenario.duration and watch.active() == 0 \
                and all_resolved(scenario, watch.history):
            break
        stop.wait(0.5)
    watch.stop()
    if stop.is_set():
        return 130
    slack = 2 * (max(1.0, MONITOR_PERIOD_SECONDS / scale) + max(1.0, SCRAPE_SECONDS / scale)
                 + 2 * max(1.0, EVALUATION_SECONDS / scale)) + 2.0
    problems = check_expectations(scenario, watch.history, slack) + host_problems(scenario, watch.history)
    for problem in problems:
        _warn(problem)
    _say("expectations met" if not problems else f"{len(problems)} expectation(s) not met")
    return 1 if problems else 0


def _act_on(event, host: Host) -> None:
    try:
        _act(event, host)
    except (NeuronError, RuntimeError) as exc:
        _warn(f"{event.action} on {host.spec.name}: {exc}")


def _act(event, host: Host) -> None:
    if event.action == "kill-host":
        host.stop()
    elif event.action == "start-host":
        host.start()
    elif event.action == "restart-daemon":
        host.restart_daemon()
    elif event.action == "stop-load":
        host.stop_load()
    elif event.action == "start-load":
        host.start_load()
    elif event.action == "set-workload":
        host.set_workloads(event.workloads)
    else:
        with Device(host.daemon.address) as device:
            device.inject_fault(event.action, **event.fault)


def _describe(specs) -> str:
    counts: dict[str, int] = {}
    for spec in specs:
        counts[spec.instance_type] = counts.get(spec.instance_type, 0) + 1
    return ", ".join(f"{n} x {kind}" for kind, n in counts.items())


def _print_status(statuses: list[dict]) -> None:
    up = sum(s["up"] for s in statuses)
    _say(f"{time.strftime('%H:%M:%S')} hosts up {up}/{len(statuses)}, cores busy "
         f"{sum(s['busy'] for s in statuses)}/{sum(s['cores'] for s in statuses)}, "
         f"errors {sum(s['errors'] for s in statuses)}")
    for s in statuses:
        _say(f"  {s['host']:<12} {'up' if s['up'] else 'DOWN':<4} cores busy {s['busy']:>2}/{s['cores']:<2} "
             f"errors {s['errors']}")


def _stop_all(hosts: list[Host]) -> None:
    with ThreadPoolExecutor(START_WORKERS) as pool:
        list(pool.map(Host.stop, hosts))


if __name__ == "__main__":
    sys.exit(main())
