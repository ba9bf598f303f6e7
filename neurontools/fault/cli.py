"""neuron-fault: inject, list and clear faults on a running neurond (operator tool)."""

from __future__ import annotations

import argparse
import sys

from neurontools import connection_options
from neurontools._proto import neurond_pb2 as pb
from neurontools.client import Device, NeuronError

KINDS = [name.lower().replace("_", "-") for name in pb.FaultKind.keys() if name != "FAULT_KIND_UNSPECIFIED"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neuron-fault", description="Inject the failures real fleets see into a running neurond, to test "
        "dashboards and alert rules. Faults show up in neuron-monitor, its exporters and neuron-top.")
    connection_options.add_arguments(parser)
    # Not required here: argparse would report a missing command before an unknown flag (main checks).
    commands = parser.add_subparsers(dest="command", metavar="{inject,list,clear}")
    inject = commands.add_parser("inject", help="inject a fault")
    inject.add_argument("kind", choices=KINDS)
    inject.add_argument("--device", type=int, default=0, help="device index (ECC events, device-reset)")
    inject.add_argument("--core", type=int, default=0, help="NeuronCore id (core-hang, numerical-error)")
    inject.add_argument("--link", type=int, default=0, help="link id (link-down; see neuron-top's topology view)")
    inject.add_argument("--count", type=int, default=1, help="number of ECC events")
    inject.add_argument("--duration", type=float, default=0.0,
                        help="seconds a lasting fault lasts (0: until cleared)")
    commands.add_parser("list", help="list the lasting faults in force")
    clear = commands.add_parser("clear", help="clear a lasting fault, or all of them")
    clear.add_argument("fault_id", type=int, nargs="?", default=0)
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The arguments; exits 2 naming the first thing wrong: an unknown flag, then a missing command."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        parser.error("a command is required: inject, list or clear")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        with Device(connection_options.from_arguments(args)) as device:
            if args.command == "inject":
                fault = device.inject_fault(args.kind, device=args.device, core=args.core, link=args.link,
                                            count=args.count, duration=args.duration)
                print(f"fault {fault.fault_id}: {fault.description}")
            elif args.command == "list":
                for fault in device.faults():
                    print(f"{fault.fault_id}\t{pb.FaultKind.Name(fault.kind).lower()}\t{fault.description}")
            else:
                print(f"cleared {device.clear_faults(args.fault_id)} fault(s)")
    except (NeuronError, connection_options.ConnectionOptionError) as exc:  # a clear of an unknown id too
        print(f"neuron-fault: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
