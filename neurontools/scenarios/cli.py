"""neuron-scenario: check or play a scenario file (workloads and faults on a timeline)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from neurontools import connection_options
from neurontools.client import NeuronError
from neurontools.scenarios.scenario_file import ScenarioFileError, load_scenario
from neurontools.scenarios.timeline import play
from neurontools.workloads import catalog
from neurontools.workloads.daemon_process import DaemonProcess
from neurontools.workloads.runner import exit_now_if_requests_are_stuck


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neuron-scenario",
        description="Play workloads and injected faults on a timeline against neurond, reproducibly, to test "
                    "dashboards and alert rules end to end. The file format is in docs/scenarios.md.")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="validate scenario files and say what they do")
    check.add_argument("files", nargs="+")
    run = commands.add_parser("run", help="play a scenario; its summary (JSON) goes to stdout (neuron-lab also runs "
                                          "Prometheus and checks the scenario's expected alerts)")
    run.add_argument("file")
    run.add_argument("--per-call", action="store_true",
                     help="the workloads call Execute once per execution instead of running request loads inside "
                          "the daemon (the default), as neuron-workload --per-call")
    connection_options.add_arguments(run, address_help="a running daemon (default: start a private one of the "
                                                       "scenario's instance_type, unless $NEURON_DAEMON_ADDRESS is set)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "check":
            for path in args.files:
                scenario = load_scenario(path)
                extras = "".join(f", {len(items)} {what}" for what, items in (
                    ("memory holder(s)", scenario.memory), ("lab step(s)", scenario.lab),
                    ("expected alert(s)", scenario.expect)) if items)
                print(f"{path}: ok: {scenario.name!r}, {len(scenario.workloads)} workload(s), "
                      f"{len(scenario.faults)} fault(s){extras}, {scenario.duration:g} s on {scenario.instance_type}")
            return 0
        scenario = load_scenario(args.file)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())

        def log(text: str) -> None:
            print(f"neuron-scenario: {text}", file=sys.stderr, flush=True)

        endpoint = connection_options.given(args)
        if endpoint is not None:
            result = play(scenario, endpoint, stop, log, per_call=args.per_call)
        else:
            with DaemonProcess(scenario.instance_type) as daemon:
                log(f"neurond ({scenario.instance_type}) on {daemon.address}")
                result = play(scenario, daemon.address, stop, log, per_call=args.per_call)
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
        status = 0 if all(w["status"] != "error" for w in result["workloads"]) else 1
        exit_now_if_requests_are_stuck(status)  # a request stuck on a hung core must not hold the exit
        return status
    except (ScenarioFileError, catalog.SpecError, NeuronError, RuntimeError,
            connection_options.ConnectionOptionError) as exc:
        print(f"neuron-scenario: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
