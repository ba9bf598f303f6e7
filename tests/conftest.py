import shutil
from pathlib import Path

import pytest

from neurontools.addresses import temporary_socket_directory
from neurontools.daemon.embedded import running_daemon


@pytest.fixture(scope="module")
def daemon():
    """An inf2.48xlarge neurond in this process, shared by the tests of one module."""
    with running_daemon("inf2.48xlarge", instance_id="i-0123456789abcdef0") as running:
        yield running


@pytest.fixture
def address(daemon):
    return daemon.address


@pytest.fixture
def socket_dir():
    """A private directory for Unix sockets: their paths fit the kernel's 107-byte limit whatever
    $TMPDIR is (pytest's tmp_path under a long $TMPDIR would not)."""
    path = Path(temporary_socket_directory("nt-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
