"""neuron-monitor: read the configuration, then write one JSON report per line until stopped.

The loop sleeps until the next metric group is due (never a fixed timer that can pile up, DESIGN
principle 9), and wakes early only to stop: on SIGTERM or SIGINT, or when the reader of stdout
goes away (`neuron-monitor | head -1`). Either way it exits 0 without a traceback.
"""

from __future__ import annotations

import logging
import math
import os
import select
import signal
import sys
import time
from dataclasses import dataclass

from neurontools import __version__
from neurontools.monitor.config import ConfigError, MonitorConfig, default_config, load_config

# The go-flags help of the real tool (reference §3.1), plus our --address and --version.
USAGE = """\
Usage:
  neuron-monitor [OPTIONS]

Application Options:
      --verbose=     Verbosity level (default: 0)
  -c, --config-file= Path to configuration file
      --address=     Address of the neurond daemon: unix:///path or host:port
                     [$NEURON_DAEMON_ADDRESS]
      --version      Print the neuron-monitor version and exit.

Help Options:
  -h, --help         Show this help message
"""

_VALUE_FLAGS = {"verbose": "--verbose", "config-file": "-c, --config-file", "address": "--address"}
_SHORT_VALUE_FLAGS = {"c": "config-file"}
_SWITCHES = {"help": "help", "version": "version"}
_SHORT_SWITCHES = {"h": "help"}
_LOG_LEVELS = {1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO, 4: logging.DEBUG}
MAX_SNAPSHOT_TIMEOUT_SECONDS = 5.0


class UsageError(ValueError):
    pass


@dataclass
class Options:
    verbose: int = 0
    config_file: str | None = None
    address: str | None = None  # None: $NEURON_DAEMON_ADDRESS, else the default socket
    help: bool = False
    version: bool = False


def parse_options(argv: list[str]) -> Options:
    """Flags as Go's go-flags reads them: `--flag=value` or `--flag value`, `-cFILE` or `-c FILE`."""
    values: dict[str, str] = {}
    switches: set[str] = set()
    args = iter(argv)
    for arg in args:
        if arg == "--":
            rest = list(args)
            if rest:
                raise UsageError(f"unexpected argument `{rest[0]}'")
            break
        if arg.startswith("--"):
            name, has_value, value = arg[2:].partition("=")
            if name in _SWITCHES:
                if has_value:
                    raise UsageError(f"bool flag `--{name}' cannot have an argument")
                switches.add(_SWITCHES[name])
            elif name in _VALUE_FLAGS:
                values[name] = value if has_value else _next_value(args, name)
            else:
                raise UsageError(f"unknown flag `{name}'")
        elif arg.startswith("-") and len(arg) > 1:
            letters = arg[1:]
            for position, letter in enumerate(letters):
                if letter in _SHORT_SWITCHES:
                    switches.add(_SHORT_SWITCHES[letter])
                elif letter in _SHORT_VALUE_FLAGS:
                    name = _SHORT_VALUE_FLAGS[letter]
                    values[name] = letters[position + 1:] or _next_value(args, name)
                    break
                else:
                    raise UsageError(f"unknown flag `{letter}'")
        else:
            raise UsageError(f"unexpected argument `{arg}'")
    options = Options(config_file=values.get("config-file"), address=values.get("address"),
                      help="help" in switches, version="version" in switches)
    if "verbose" in values:
        text = values["verbose"]
        try:
            options.verbose = int(text)
        except ValueError:
            raise UsageError(f"invalid argument for flag `--verbose' (expected int): strconv.ParseInt: "
                             f"parsing \"{text}\": invalid syntax") from None
        if not 0 <= options.verbose <= 4:
            raise UsageError(f"invalid argument for flag `--verbose': {options.verbose} is not between 0 and 4")
    return options


def _next_value(args, name: str) -> str:
    value = next(args, None)
    if value is None:
        raise UsageError(f"expected argument for flag `{_VALUE_FLAGS[name]}'")
    return value


_STARTED_WALL = time.time()


class _LogrusFormatter(logging.Formatter):
    """`INFO[0012] message`: level, then whole seconds since start, as the Go tools log."""

    def format(self, record: logging.LogRecord) -> str:
        level = {"WARNING": "WARN", "CRITICAL": "FATA"}.get(record.levelname, record.levelname)[:4]
        return f"{level}[{int(record.created - _STARTED_WALL):04d}] {record.getMessage()}"


def _configure_logging(verbose: int) -> None:
    logger = logging.getLogger("neuron-monitor")
    logger.propagate = False
    if verbose == 0:
        logger.disabled = True  # 0: no output at all
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LogrusFormatter())
    logger.addHandler(handler)
    logger.setLevel(_LOG_LEVELS[verbose])


def _stop_signals() -> int:
    """A file descriptor that becomes readable when SIGTERM or SIGINT arrives.

    The handlers do nothing themselves: the signal only wakes the loop's poll(), so it can never
    interrupt a report half written.
    """
    read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: None)
    return read_fd


def _shortest_period(config: MonitorConfig) -> float:
    periods = [config.period, *config.system.values()]
    periods.extend(period for selector in config.runtimes for period in selector.groups.values())
    return min(periods)


def run(config: MonitorConfig, address: str | None) -> int:
    """Write reports to stdout until stopped; returns the exit status."""
    # Imported here: grpc is most of the start-up time, and --help does not need it.
    from neurontools.monitor.collector import Collector
    from neurontools.monitor.report_json import dumps_report
    from neurontools.monitor.snapshot_source import DaemonSnapshots

    stop_fd = _stop_signals()
    out = sys.stdout.buffer
    poller = select.poll()
    poller.register(stop_fd, select.POLLIN)
    poller.register(out.fileno(), 0)  # no events asked: poll still reports POLLERR/POLLHUP, a reader gone
    timeout = min(MAX_SNAPSHOT_TIMEOUT_SECONDS, max(1.0, _shortest_period(config)))
    snapshots = DaemonSnapshots(address, timeout)
    collector = Collector(config, snapshots)
    log = logging.getLogger("neuron-monitor")
    try:
        while True:
            started = time.monotonic()
            line = dumps_report(collector.collect()).encode() + b"\n"
            out.write(line)
            out.flush()
            log.debug("report of %d bytes in %.1f ms", len(line), (time.monotonic() - started) * 1e3)
            delay = collector.next_due() - time.monotonic()
            if poller.poll(max(0, math.ceil(delay * 1000))):
                break  # a stop signal, or nobody reads stdout any more
    except BrokenPipeError:
        pass
    finally:
        snapshots.close()
    # The reader may be gone: keep Python's final flush of stdout from failing noisily.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, out.fileno())
    os.close(devnull)
    log.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        options = parse_options(sys.argv[1:] if argv is None else argv)
    except UsageError as error:
        sys.stdout.write(f"{error}\n\n{USAGE}")  # go-flags prints flag errors with the usage, on stdout
        return 1
    if options.help:
        sys.stdout.write(USAGE)
        return 0
    if options.version:
        sys.stdout.write(f"neuron-monitor {__version__}\n")
        return 0
    _configure_logging(options.verbose)
    try:
        config = load_config(options.config_file) if options.config_file else default_config()
    except ConfigError as error:
        sys.stderr.write(f"neuron-monitor: invalid configuration: {error}\n")
        return 1
    return run(config, options.address)


if __name__ == "__main__":
    sys.exit(main())
