"""Where neurond listens by default, shared by the daemon and every client (kept import-light)."""

from __future__ import annotations

import os

ADDRESS_ENV = "NEURON_DAEMON_ADDRESS"
TOKEN_ENV = "NEURON_DAEMON_TOKEN"


def default_socket_path() -> str:
    """/run/neurond.sock for root; $XDG_RUNTIME_DIR/neurond.sock or /tmp/neurond-<uid>.sock otherwise."""
    if os.geteuid() == 0:
        return "/run/neurond.sock"
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir and os.path.isdir(runtime_dir):
        return os.path.join(runtime_dir, "neurond.sock")
    return f"/tmp/neurond-{os.geteuid()}.sock"


def default_address() -> str:
    """$NEURON_DAEMON_ADDRESS if set, else the default Unix socket."""
    return os.environ.get(ADDRESS_ENV) or f"unix://{default_socket_path()}"


def normalize(address: str | None) -> str:
    """A gRPC target: "unix:///abs/path" for sockets (a bare path is accepted), else HOST:PORT."""
    if not address:
        return default_address()
    if address.startswith("/"):
        return f"unix://{address}"
    return address


def unix_socket_path(address: str) -> str:
    if not address.startswith("unix:"):
        raise ValueError(f"{address!r} is not a Unix socket address; use unix:///path/to/neurond.sock")
    path = address[len("unix:"):]
    return path[2:] if path.startswith("//") else path


def is_unix(address: str) -> bool:
    return address.startswith("unix:")
