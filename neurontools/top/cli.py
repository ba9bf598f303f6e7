"""The neuron-top command line: pick a source, run the app, leave the terminal as it was.

Flag errors are reported by argparse (usage, exit status 2) before the terminal is touched.
Textual and gRPC are imported only once the flags are good, so `--help` and mistakes are fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from neurontools import __version__, connection_options

MIN_INTERVAL_SECONDS = 0.1


def _interval(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not seconds >= MIN_INTERVAL_SECONDS:
        raise argparse.ArgumentTypeError(f"{text} is too short: the shortest interval is {MIN_INTERVAL_SECONDS} s")
    return seconds


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neuron-top",
        description="Real-time view of NeuronCore and vCPU utilization, memory, models and Neuron "
                    "applications: live from neurond, or from a neuron-monitor stream or recording.",
        epilog="Keys: q quits, ? lists every key. Examples: neuron-top; neuron-monitor | neuron-top --stdin; "
               "neuron-top --replay run.ndjson")
    parser.add_argument("--version", action="version", version=f"neuron-top {__version__}")
    connection_options.add_arguments(parser)
    parser.add_argument("--interval", type=_interval, default=1.0, metavar="SECONDS",
                        help="refresh interval of the live view (default: 1)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--stdin", action="store_true",
                        help="read a neuron-monitor NDJSON stream from standard input")
    source.add_argument("--replay", type=Path, metavar="FILE",
                        help="replay a recorded neuron-monitor stream (NDJSON or pretty-printed reports)")
    source.add_argument("--fleet", nargs="?", const="", metavar="FILE_OR_DIR",
                        help="one row per host of a fleet, from its exporters: a Prometheus file_sd discovery "
                             "file, or a neuron-fleet state directory (default: the running neuron-fleet's)")
    parser.add_argument("--readonly", action="store_true", help="never end runtime sessions from the process view")
    parser.add_argument("--theme", help="a Textual theme, e.g. textual-dark, nord, gruvbox (T cycles them)")
    return parser


def _stdin_as_data() -> int:
    """The piped stream's descriptor, and the terminal back on fd 0 for the keyboard (Textual
    reads keys from fd 0)."""
    data = os.dup(0)
    terminal = os.open("/dev/tty", os.O_RDONLY)
    os.dup2(terminal, 0)
    os.close(terminal)
    return data


def _fleet(args) -> int:
    from neurontools.fleet.spec import runtime_directory
    from neurontools.top.fleet_app import FleetTopApp
    from neurontools.top.fleet_source import FleetSource, FleetSourceError, load_targets

    try:
        targets = load_targets(Path(args.fleet or runtime_directory()))
    except FleetSourceError as error:
        print(f"neuron-top: {error}", file=sys.stderr)
        return 2
    source = FleetSource(targets)
    try:
        app = FleetTopApp(source, interval=args.interval)
        if args.theme:
            app.theme = args.theme
        app.run()
    finally:
        source.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.replay is not None and not args.replay.is_file():
        print(f"neuron-top: cannot replay {args.replay}: no such file", file=sys.stderr)
        return 2
    if args.stdin and sys.stdin.isatty():
        print("neuron-top: --stdin reads a neuron-monitor stream: pipe one in (neuron-monitor | neuron-top --stdin)",
              file=sys.stderr)
        return 2

    if args.fleet is not None:
        return _fleet(args)
    try:
        endpoint = connection_options.from_arguments(args)
    except connection_options.ConnectionOptionError as error:
        print(f"neuron-top: {error}", file=sys.stderr)
        return 2

    from neurontools.top.app import NeuronTopApp
    from neurontools.top.sources.frame import FrameSource

    source: FrameSource
    if args.stdin:
        from neurontools.top.sources.stream import StreamSource, fd_lines
        try:
            source = StreamSource(fd_lines(_stdin_as_data()))
        except OSError as error:
            print(f"neuron-top: --stdin needs a terminal for the keyboard: {error}", file=sys.stderr)
            return 2
    elif args.replay is not None:
        from neurontools.top.sources.replay import ReplaySource
        source = ReplaySource(args.replay, default_period=args.interval)
    else:
        from neurontools.top.sources.live import LiveSource
        source = LiveSource(endpoint, args.interval)

    app = NeuronTopApp(source, readonly=args.readonly)
    if args.theme:
        if args.theme not in app.available_themes:
            print(f"neuron-top: unknown theme {args.theme!r}; known: {', '.join(sorted(app.available_themes))}",
                  file=sys.stderr)
            return 2
        app.theme = args.theme
    try:
        app.run()
    finally:
        source.close()
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main())
