"""Whether a process still exists, for the tools that keep pid files (the sysfs tree's marker, neuron-fleet's state)."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True while `pid` exists, also when it belongs to another user (signal 0 checks, sends nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
