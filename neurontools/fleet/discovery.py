"""The fleet's Prometheus file-based service discovery file: every host's exporter and its labels.

Written atomically (a rename), as Prometheus's file_sd expects: it rereads the file when it changes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


NEUROND_ADDRESS_LABEL = "__neurond_address"


def targets_document(hosts) -> list[dict]:
    """Each host's labels, and its daemon's address for `neuron-top --fleet` to drill into: a label
    starting with "__", which Prometheus drops after relabeling, so no series carries it."""
    return [{"targets": [host.target],
             "labels": host.spec.labels() | {NEUROND_ADDRESS_LABEL: host.daemon.address}} for host in hosts]


def write_targets(path: Path, hosts) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(targets_document(hosts), indent=2) + "\n")
    os.replace(temporary, path)
