"""Socket paths: the defaults and temporary sockets stay under the kernel's limit whatever the
environment's directories are, and a path that cannot work is refused with the fix."""

import os
import tempfile

import pytest

from neurontools import addresses, connection_options
from neurontools.daemon.server.embedded import running_daemon
from neurontools.client import Device

LIMIT = 107  # sizeof(sockaddr_un.sun_path) - 1 on Linux (man 7 unix)


@pytest.fixture
def long_tmpdir(tmp_path_factory, monkeypatch):
    """$TMPDIR deep enough that a socket below it cannot fit (as on some CI runners and macOS)."""
    base = tmp_path_factory.mktemp("t")
    deep = base / ("x" * max(1, 100 - len(str(base))))
    deep.mkdir()
    monkeypatch.setenv("TMPDIR", str(deep))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read $TMPDIR
    assert tempfile.gettempdir() == str(deep)
    return deep


def test_temporary_socket_directories_stay_short_under_a_long_tmpdir(long_tmpdir):
    directory = addresses.temporary_socket_directory()
    try:
        assert len(os.path.join(directory, "neurond.sock").encode()) <= LIMIT
        assert os.stat(directory).st_mode & 0o077 == 0  # private, as mkdtemp makes it
    finally:
        os.rmdir(directory)


def test_temporary_socket_directories_use_a_short_tmpdir(socket_dir, monkeypatch):
    short = socket_dir
    monkeypatch.setenv("TMPDIR", str(short))
    monkeypatch.setattr(tempfile, "tempdir", None)
    directory = addresses.temporary_socket_directory()
    assert os.path.dirname(directory) == str(short)
    os.rmdir(directory)


def test_an_embedded_daemon_serves_under_a_long_tmpdir(long_tmpdir):
    with running_daemon("inf2.xlarge") as daemon, Device(daemon.address) as device:
        assert device.topology().instance.instance_type == "inf2.xlarge"


def test_the_default_socket_leaves_a_runtime_dir_too_deep_for_it(socket_dir, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(socket_dir))
    assert addresses.default_socket_path() == f"{socket_dir}/neurond.sock"
    deep = socket_dir / ("r" * (LIMIT - len(str(socket_dir))))
    deep.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(deep))
    assert addresses.default_socket_path() == "/tmp/neurond-1000.sock"


def test_a_client_given_a_path_over_the_limit_says_so():
    path = "/tmp/" + "y" * (LIMIT - len("/tmp/") + 1)
    assert len(path) == LIMIT + 1
    with pytest.raises(connection_options.ConnectionOptionError, match=f"is {LIMIT + 1} bytes; the kernel allows "
                                                                     f"at most {LIMIT}"):
        Device(f"unix://{path}")
    connection_options.resolve(f"unix://{path[:-1]}")  # exactly at the limit: fine


def test_a_socket_path_of_exactly_the_limit_serves(socket_dir):
    from neurontools.daemon.device import topology as topo
    from neurontools.daemon.server.embedded import EmbeddedDaemon
    from neurontools.daemon.device.instance_info import resolve_identity
    from neurontools.daemon.server.grpc_server import ServerOptions

    deep = socket_dir / ("d" * (LIMIT - len(f"{socket_dir}//neurond.sock")))
    deep.mkdir()
    path = f"{deep}/neurond.sock"
    assert len(path) == LIMIT
    machine = topo.lookup("inf2.xlarge")
    daemon = EmbeddedDaemon(ServerOptions(machine=machine, instance=resolve_identity(machine.instance_type, {}),
                                          address=f"unix://{path}")).start()
    try:
        with Device(f"unix://{path}") as device:
            assert device.topology().instance.instance_type == "inf2.xlarge"
    finally:
        daemon.stop()
