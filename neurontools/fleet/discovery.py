"""The fleet's Prometheus file-based service discovery file: every host's exporter and its labels.

Written atomically (a rename), as Prometheus's file_sd expects: it rereads the file when it changes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def targets_document(hosts) -> list[dict]:
    return [{"targets": [host.target], "labels": host.spec.labels()} for host in hosts]


def write_targets(path: Path, hosts) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(targets_document(hosts), indent=2) + "\n")
    os.replace(temporary, path)
