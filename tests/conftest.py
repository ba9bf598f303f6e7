import pytest

from neurontools.daemon.embedded import running_daemon


@pytest.fixture(scope="module")
def daemon():
    """An inf2.48xlarge neurond in this process, shared by the tests of one module."""
    with running_daemon("inf2.48xlarge", instance_id="i-0123456789abcdef0") as running:
        yield running


@pytest.fixture
def address(daemon):
    return daemon.address
