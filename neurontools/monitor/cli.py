"""neuron-monitor: read the configuration, then write one JSON report per line until stopped.

The loop sleeps until the next metric group is due (never a fixed timer that can pile up, DESIGN
principle 9), and wakes early only to stop: on SIGTERM or SIGINT, or when the reader of stdout
goes away (`neuron-monitor | head -1`). Either way it exits 0 without a traceback.

With `--prometheus-port` the same process also serves every report on /metrics, as
`neuron-monitor | neuron-monitor-prometheus` would (the companion's flags, prefixed `--prometheus-`).
"""

from __future__ import annotations

import logging
import math
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from neurontools import __version__
from neurontools.go_flags import Flag, UsageError, parse
from neurontools.monitor.config import ConfigError, MonitorConfig, default_config, load_config

if TYPE_CHECKING:
    from neurontools.connection_options import DaemonEndpoint
    from neurontools.monitor.report import Report

# The go-flags help of the real tool (reference §3.1), plus our --address and --version, and the
# Prometheus companion's flags in a group of their own (go-flags aligns every group on one column).
USAGE = """\
Usage:
  neuron-monitor [OPTIONS]

Application Options:
      --verbose=                   Verbosity level (default: 0)
  -c, --config-file=               Path to configuration file
      --address=                   Address of the neurond daemon: unix:///path or host:port
                                   [$NEURON_DAEMON_ADDRESS]
      --token-file=                File holding the token a TCP daemon asks for
                                   [$NEURON_DAEMON_TOKEN_FILE]
      --ca-file=                   CA certificate of a TLS daemon (PEM)
                                   [$NEURON_DAEMON_CA_FILE]
      --version                    Print the neuron-monitor version and exit.

Prometheus Options:
      --prometheus-port=           Also serve the reports as Prometheus metrics on this port, as
                                   neuron-monitor-prometheus --port does (0: any free port)
      --prometheus-listen-address= Address to serve them on (default: 0.0.0.0)
      --prometheus-lean            Leave out prometheus_client's own series and the *_created series
      --prometheus-stale-after=    Seconds after which the latest report no longer counts
                                   (default: 15)

Help Options:
  -h, --help                       Show this help message
"""

_FLAGS = (Flag("verbose", takes_value=True), Flag("config-file", "c", takes_value=True),
          Flag("address", takes_value=True), Flag("token-file", takes_value=True), Flag("ca-file", takes_value=True),
          Flag("version"), Flag("help", "h"),
          Flag("prometheus-port", takes_value=True), Flag("prometheus-listen-address", takes_value=True),
          Flag("prometheus-lean"), Flag("prometheus-stale-after", takes_value=True))
_LOG_LEVELS = {1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO, 4: logging.DEBUG}
MAX_SNAPSHOT_TIMEOUT_SECONDS = 5.0


@dataclass
class Options:
    verbose: int = 0
    config_file: str | None = None
    address: str | None = None     # None: $NEURON_DAEMON_ADDRESS, else the default socket
    token_file: str | None = None  # None: $NEURON_DAEMON_TOKEN_FILE or $NEURON_DAEMON_TOKEN
    ca_file: str | None = None     # None: $NEURON_DAEMON_CA_FILE
    help: bool = False
    version: bool = False
    prometheus_port: int | None = None  # None: no /metrics
    prometheus_listen_address: str = "0.0.0.0"  # as neuron-monitor-prometheus
    prometheus_lean: bool = False
    prometheus_stale_after: float = 15.0


def parse_options(argv: list[str]) -> Options:
    """Flags as Go's go-flags reads them: `--flag=value` or `--flag value`, `-cFILE` or `-c FILE`."""
    parsed = parse(argv, _FLAGS)
    values = {name: value for name, value in parsed.items() if isinstance(value, str)}
    switches = {name for name, value in parsed.items() if value is True}
    options = Options(config_file=values.get("config-file"), address=values.get("address"),
                      token_file=values.get("token-file"), ca_file=values.get("ca-file"),
                      help="help" in switches, version="version" in switches,
                      prometheus_lean="prometheus-lean" in switches)
    if "verbose" in values:
        text = values["verbose"]
        try:
            options.verbose = int(text)
        except ValueError:
            raise UsageError(f"invalid argument for flag `--verbose' (expected int): strconv.ParseInt: "
                             f"parsing \"{text}\": invalid syntax") from None
        if not 0 <= options.verbose <= 4:
            raise UsageError(f"invalid argument for flag `--verbose': {options.verbose} is not between 0 and 4")
    _read_prometheus_options(values, switches, options)
    return options


def _read_prometheus_options(values: dict[str, str], switches: set[str], options: Options) -> None:
    if "prometheus-port" in values:
        text = values["prometheus-port"]
        if not (text.isascii() and text.isdigit()):
            raise UsageError(f"invalid argument for flag `--prometheus-port' (expected uint16): "
                             f"strconv.ParseUint: parsing \"{text}\": invalid syntax")
        if int(text) > 65535:
            raise UsageError(f"invalid argument for flag `--prometheus-port' (expected uint16): "
                             f"strconv.ParseUint: parsing \"{text}\": value out of range")
        options.prometheus_port = int(text)
    elif {"prometheus-listen-address", "prometheus-stale-after"} & values.keys() or "prometheus-lean" in switches:
        raise UsageError("--prometheus-listen-address, --prometheus-lean and --prometheus-stale-after "
                         "need --prometheus-port")
    options.prometheus_listen_address = values.get("prometheus-listen-address", options.prometheus_listen_address)
    if "prometheus-stale-after" in values:
        text = values["prometheus-stale-after"]
        try:
            seconds = float(text)
        except ValueError:
            raise UsageError(f"invalid argument for flag `--prometheus-stale-after' (expected float64): "
                             f"strconv.ParseFloat: parsing \"{text}\": invalid syntax") from None
        if not seconds > 0:  # NaN too
            raise UsageError("invalid argument for flag `--prometheus-stale-after': "
                             "must be a positive number of seconds, or inf")
        options.prometheus_stale_after = seconds


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


def run(config: MonitorConfig, address: str | DaemonEndpoint | None,
        on_report: Callable[[Report], None] | None = None) -> int:
    """Write reports to stdout until stopped; returns the exit status. `on_report` receives each
    report once its line is written (the built-in Prometheus exporter's `update`)."""
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
            report = collector.collect()
            line = dumps_report(report).encode() + b"\n"
            out.write(line)
            out.flush()
            if on_report is not None:
                on_report(report)
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
    from neurontools import connection_options
    try:
        endpoint = connection_options.resolve(options.address, token_file=options.token_file,
                                              ca_file=options.ca_file)
    except connection_options.ConnectionOptionError as error:
        sys.stderr.write(f"neuron-monitor: {error}\n")
        return 1
    if options.prometheus_port is None:
        return run(config, endpoint)
    from neurontools.monitor.prometheus import PrometheusExporter  # prometheus_client only when asked

    where = f"{options.prometheus_listen_address}:{options.prometheus_port}"
    try:
        exporter = PrometheusExporter(options.prometheus_port, address=options.prometheus_listen_address,
                                      lean=options.prometheus_lean, stale_after=options.prometheus_stale_after)
    except OSError as error:  # the port is taken, or the address is not this host's
        sys.stderr.write(f"neuron-monitor: cannot serve Prometheus metrics on {where}: {error}\n")
        return 1
    logging.getLogger("neuron-monitor").info(
        "serving Prometheus metrics on %s:%d", options.prometheus_listen_address, exporter.port)
    try:
        return run(config, endpoint, exporter.update)
    finally:
        exporter.close()


if __name__ == "__main__":
    sys.exit(main())
