"""Where neurond listens by default, shared by the daemon and every client (kept import-light)."""

from __future__ import annotations

import os

ADDRESS_ENV = "NEURON_DAEMON_ADDRESS"
TOKEN_ENV = "NEURON_DAEMON_TOKEN"


# A Unix socket path lives in sockaddr_un.sun_path: 108 bytes with the terminating NUL on Linux.
MAX_SOCKET_PATH_BYTES = 107
SOCKET_NAME = "neurond.sock"


class SocketPathError(ValueError):
    """A Unix socket path neurond cannot bind or a client cannot reach; the message says the fix."""


def default_socket_path() -> str:
    """/run/neurond.sock for root; $XDG_RUNTIME_DIR/neurond.sock or /tmp/neurond-<uid>.sock otherwise
    (also when $XDG_RUNTIME_DIR is too deep for a socket path)."""
    if os.geteuid() == 0:
        return "/run/neurond.sock"
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir and os.path.isdir(runtime_dir):
        path = os.path.join(runtime_dir, SOCKET_NAME)
        if _fits(path):
            return path
    return f"/tmp/neurond-{os.geteuid()}.sock"


def _fits(path: str) -> bool:
    return len(os.fsencode(path)) <= MAX_SOCKET_PATH_BYTES


def check_socket_path_length(path: str) -> None:
    """Raise SocketPathError when `path` is too long for a Unix socket address."""
    if not _fits(path):
        raise SocketPathError(
            f"the Unix socket path {path} is {len(os.fsencode(path))} bytes; the kernel allows at most "
            f"{MAX_SOCKET_PATH_BYTES}: choose a shorter --address such as unix:///tmp/neurond.sock (a long $TMPDIR "
            "or $XDG_RUNTIME_DIR makes the paths derived from it long)")


def check_socket_path(path: str) -> None:
    """Raise SocketPathError unless a socket can be made at `path`: short enough for the kernel,
    in a directory that exists (neurond creates no directories)."""
    check_socket_path_length(path)
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        raise SocketPathError(
            f"cannot create the socket {path}: the directory {directory} does not exist; create it (with the "
            "permissions you want for it) or choose another --address; neurond creates no directories")


def temporary_socket_directory(prefix: str = "neurond-") -> str:
    """A new private directory for a temporary socket, in $TMPDIR when the socket path fits there,
    else in /tmp. The caller removes it."""
    import tempfile
    directory = tempfile.gettempdir()
    # mkdtemp adds 8 characters to the prefix
    if not _fits(os.path.join(directory, prefix + "x" * 8, SOCKET_NAME)):
        directory = "/tmp"
    return tempfile.mkdtemp(prefix=prefix, dir=directory)


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
