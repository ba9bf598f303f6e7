"""`neuron-monitor-prometheus`: `neuron-monitor | neuron-monitor-prometheus --port 8000`.

A drop-in for AWS's `neuron-monitor-prometheus.py` (same arguments, start-up lines and /metrics),
built on `PrometheusMapping`. It reads neuron-monitor's reports from stdin, one per line, and
keeps serving whatever comes: a line that is not a report is logged and skipped, and at the end of
the input the last report is served until it goes stale or the process is stopped.

Reading is as tolerant as AWS's script, which only looks at the groups and fields it maps: unknown
keys and missing groups are fine, and a group (or runtime entry) that does not fit the schema is
dropped with a log line while the rest of the report is used. The CloudWatch companion reads its
input the same way (`parse_report_line`).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import sys
from collections.abc import Iterable
from types import FrameType
from typing import Any

from pydantic import ValidationError

from neurontools.monitor.prometheus import PrometheusExporter
from neurontools.monitor.report import Report, ReportObject, RuntimeReport, SystemData
from neurontools.monitor.report_json import loads_report

log = logging.getLogger("neuron-monitor-prometheus")


class UnreadableLine(ValueError):
    """An input line that is not a neuron-monitor report, even with its broken groups left out."""


def parse_report_line(line: str | bytes) -> tuple[Report, list[str]]:
    """Read one report line; returns the report and what had to be left out of it, one note per part."""
    try:
        return loads_report(line), []
    except ValidationError:
        pass  # not valid JSON, or not the schema: find out which, below
    text = line.decode("utf-8", errors="replace") if isinstance(line, bytes) else line
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnreadableLine(f"Unable to decode JSON {exc}") from None
    if not isinstance(data, dict):
        raise UnreadableLine(f"Not a neuron-monitor report: a JSON {type(data).__name__}, not an object")
    try:
        return Report.model_validate(data), []
    except ValidationError as exc:
        notes = _drop_broken_parts(data, exc)
        if notes is None:
            raise UnreadableLine(f"Not a neuron-monitor report: {_describe(exc)}") from None
    try:
        return Report.model_validate(data), notes
    except ValidationError as exc:
        raise UnreadableLine(f"Not a neuron-monitor report: {_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    return "; ".join(f"{_path(error['loc'])}: {error['msg']}" for error in exc.errors())


# pydantic puts the class of a union member in error locations (`memory_used.MemoryUsed.loaded_models`).
_MODEL_NAMES = frozenset(model.__name__ for model in ReportObject.__subclasses__())


def _path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc if part not in _MODEL_NAMES) or "(the report)"


def _drop_broken_parts(data: dict[str, Any], exc: ValidationError) -> list[str] | None:
    """Remove, in place, the metric groups and runtime entries the errors point into.

    Returns a note per removed part, or None when an error lies outside any of them (instance_info,
    neuron_hardware_info, the report's skeleton): then nothing can be salvaged.
    """
    notes: dict[tuple[Any, ...], str] = {}
    for error in exc.errors():
        loc = error["loc"]
        problem = f"{_path(loc)}: {error['msg']}"
        if len(loc) > 1 and loc[0] == "system_data" and loc[1] in SystemData.model_fields:
            notes.setdefault(("system_data", loc[1]), f"left out {loc[1]} ({problem})")
        elif len(loc) > 3 and loc[0] == "neuron_runtime_data" and loc[2] == "report" \
                and loc[3] in RuntimeReport.model_fields:
            notes.setdefault(("runtime", loc[1], loc[3]), f"left out {loc[3]} of runtime entry {loc[1]} ({problem})")
        elif len(loc) > 1 and loc[0] == "neuron_runtime_data" and isinstance(loc[1], int):
            notes.setdefault(("runtime", loc[1]), f"left out runtime entry {loc[1]} ({problem})")
        else:
            return None
    runtimes = data.get("neuron_runtime_data") or []
    dropped_runtimes = {key[1] for key in notes if key[0] == "runtime" and len(key) == 2}
    for key in notes:
        if key[0] == "system_data":
            del data["system_data"][key[1]]
        elif len(key) == 3 and key[1] not in dropped_runtimes:
            del runtimes[key[1]]["report"][key[2]]
    if dropped_runtimes:
        data["neuron_runtime_data"] = [runtime for index, runtime in enumerate(runtimes)
                                       if index not in dropped_runtimes]
    return list(notes.values())


def serve_lines(exporter: PrometheusExporter, lines: Iterable[bytes]) -> None:
    """Feed every report line to the exporter; log and count the lines that are not reports."""
    for line in lines:
        if not line.strip():
            continue
        if exporter.reload_tls_if_changed():
            print("Refreshing TLS certificates", flush=True)
        try:
            report, notes = parse_report_line(line)
        except UnreadableLine as exc:
            log.warning("%s", exc)
            exporter.reject_line()
            continue
        for note in notes:
            log.warning("%s", note)
        exporter.update(report)


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neuron-monitor-prometheus",
        description="Serve neuron-monitor's reports (read from stdin) as Prometheus metrics.",
        epilog="Example: neuron-monitor | neuron-monitor-prometheus --port 8000",
    )
    parser.add_argument("-p", "--port", type=int, default=8000, help="HTTP port on which to run the server")
    parser.add_argument("--key-file", help="Path to SSL private key file (only for HTTPS)")
    parser.add_argument("--cert-file", help="Path to SSL certificate file (only for HTTPS)")
    parser.add_argument("--listen-address", default="0.0.0.0",
                        help="address to listen on (default: all interfaces, as AWS's script)")
    parser.add_argument("--lean", action="store_true",
                        help="leave out prometheus_client's own series (python_gc_*, python_info, process_*) "
                             "and the *_created series, as the Prometheus exporter guidelines advise")
    parser.add_argument("--stale-after", type=float, default=15.0, metavar="SECONDS",
                        help="withhold the Neuron series and report neuron_monitor_up 0 once the latest report "
                             "is older than this (and than 3 of its periods); 'inf' never (default: 15)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if bool(args.key_file) != bool(args.cert_file):
        parser.error("--key-file and --cert-file go together: HTTPS needs both")
    if not args.stale_after > 0 or math.isnan(args.stale_after):
        parser.error("--stale-after must be a positive number of seconds, or inf")
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        exporter = PrometheusExporter(
            args.port, address=args.listen_address, lean=args.lean, stale_after=args.stale_after,
            certfile=args.cert_file, keyfile=args.key_file)
    except OSError as exc:  # the port is taken, or the key or certificate is unusable (ssl.SSLError)
        print(f"neuron-monitor-prometheus: cannot serve on {args.listen_address}:{args.port}: {exc}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _stop)
    print(f"Running {'HTTPS' if exporter.https else 'HTTP'} prometheus server at port {exporter.port}", flush=True)
    try:
        serve_lines(exporter, sys.stdin.buffer)
        log.info("end of input; serving the last report until it goes stale or this process is stopped")
        while True:
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        exporter.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
