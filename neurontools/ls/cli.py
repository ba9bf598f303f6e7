"""neuron-ls: parse the flags, take one snapshot from neurond, print it; fail like the Go tool."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, TextIO

from neurontools import __version__
from neurontools.ls.json_output import render_json
from neurontools.ls.listing import listing_from_snapshot
from neurontools.ls.options import USAGE, Options, UsageError, parse_options
from neurontools.ls.text_output import render_text

if TYPE_CHECKING:
    from neurontools._proto import neurond_pb2 as pb

# logrus stamps fatal lines with the seconds since the program started
_STARTED = time.monotonic()
SNAPSHOT_TIMEOUT_SECONDS = 5.0


def fatal_line(message: str, error: str, elapsed_seconds: float) -> str:
    """A logrus text-formatter line: level, whole seconds since start, message padded to 44, quoted field."""
    return f"FATA[{int(elapsed_seconds):04d}] {message:<44}  error={json.dumps(error, ensure_ascii=False)}\n"


def render_output(snapshot: pb.Snapshot, options: Options) -> str:
    """What neuron-ls prints for `snapshot`: JSON wins over --topology, which wins over the table flags."""
    listing = listing_from_snapshot(snapshot, include_observers=options.show_all_procs)
    if options.json_output:
        return render_json(listing)
    return render_text(listing, wide=options.wide, show_all_procs=options.show_all_procs,
                       topology=options.topology)


def _write(text: str, stream: TextIO | None = None) -> None:
    # Bytes, as the Go tool writes them: UTF-8 box drawing whatever the locale says.
    stream = stream or sys.stdout
    stream.flush()
    stream.buffer.write(text.encode("utf-8"))
    stream.buffer.flush()


def main(argv: list[str] | None = None) -> int:
    try:
        options = parse_options(sys.argv[1:] if argv is None else argv)
    except UsageError as error:
        _write(f"{error}\n\n{USAGE}")  # the real tool prints flag errors on stdout
        return 1
    if options.help:
        _write(USAGE)
        return 0
    if options.version:
        _write(f"neuron-ls {__version__}\n")
        return 0

    # Imported here, not at the top: grpc and protobuf are most of neuron-ls's start-up time,
    # and --help, --version and flag errors do not need them.
    from neurontools import connection_options
    from neurontools.client import Device, NeuronError

    try:
        endpoint = connection_options.resolve(options.address, token_file=options.token_file,
                                              ca_file=options.ca_file)
        with Device(endpoint, timeout=SNAPSHOT_TIMEOUT_SECONDS) as device:
            snapshot = device.snapshot()
    except (NeuronError, connection_options.ConnectionOptionError) as error:
        # what failed: nothing listening, TLS handshake, missing or wrong token, unsafe token file...
        _write(fatal_line("Failed to discover neuron devices", str(error), time.monotonic() - _STARTED),
               sys.stderr)
        return 1

    _write(render_output(snapshot, options))
    return 0
