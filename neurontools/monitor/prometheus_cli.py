"""`neuron-monitor-prometheus`: `neuron-monitor | neuron-monitor-prometheus --port 8000`.

A drop-in for AWS's `neuron-monitor-prometheus.py` (same arguments, start-up lines and /metrics),
built on `PrometheusMapping`. It reads neuron-monitor's reports from stdin, one per line, and
keeps serving whatever comes: a line that is not a report is logged and skipped, and at the end of
the input the last report is served until it goes stale or the process is stopped.

Reading is as tolerant as AWS's script (`report_stream.parse_report_line`): what does not fit the
schema is left out with a log line while the rest of the report is used.
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
from collections.abc import Iterable
from types import FrameType

from neurontools.monitor.prometheus import PrometheusExporter
from neurontools.monitor.report_stream import UnreadableLine, parse_report_line

log = logging.getLogger("neuron-monitor-prometheus")


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
