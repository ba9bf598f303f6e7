"""`neuron-ls --json-output`: the device array exactly as the Go tool's json.MarshalIndent writes it.

Key order, types and layout follow the reference (section 1.5 and the real inf2.xlarge capture):
4-space indent, `numa_node` a string, `connected_to` null without links, `memory_size` in bytes,
`neuron_processes` [] when idle, full command lines, and no newline after the closing bracket.
"""

from __future__ import annotations

import json
from typing import Any

from neurontools.ls.listing import DeviceEntry, Listing

# Go's encoder escapes these even inside strings (HTML safety); Python's does not.
_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_GO_ESCAPE_TABLE = str.maketrans(_GO_ESCAPES)


def _device_object(device: DeviceEntry) -> dict[str, Any]:
    return {
        "neuron_device": device.index,
        "bdf": device.bdf,
        "cpu_affinity": device.cpu_affinity,
        "numa_node": str(device.numa_node),
        "connected_to": list(device.connected_to) or None,
        "nc_count": len(device.core_ids),
        "memory_size": device.memory_bytes,
        "neuroncore_ids": list(device.core_ids),
        "neuron_processes": [
            {"pid": p.pid, "command": p.command, "neuron_runtime_version": p.runtime_version}
            for p in device.processes
        ],
    }


def render_json(listing: Listing) -> str:
    text = json.dumps([_device_object(d) for d in listing.devices], indent=4, ensure_ascii=False)
    # the characters only occur inside string values, so translating the whole document is safe
    return text.translate(_GO_ESCAPE_TABLE)
