import shutil
import sys
from pathlib import Path

import pytest
from real_components import MISSING

from neurontools.addresses import temporary_socket_directory
from neurontools.daemon.server.embedded import running_daemon


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
def pytest_terminal_summary(terminalreporter) -> None:
    """Say loudly what did not run for want of a real component, and how deep the fuzzers reached."""
    missing = [(report.nodeid, report.longrepr[2].removeprefix("Skipped: "))
               for report in terminalreporter.stats.get("skipped", [])
               if isinstance(report.longrepr, tuple) and MISSING in report.longrepr[2]]
    if missing:
        terminalreporter.section("REAL COMPONENTS MISSING: these tests did not run", sep="!", red=True, bold=True)
        for nodeid, reason in missing:
            terminalreporter.write_line(f"NOT RUN {nodeid}: {reason}", red=True)
        terminalreporter.write_line("(with CI=true they fail instead)")
    reach = sys.modules.get("fuzz_reach")
    if reach is not None and reach.REACH.examples:
        terminalreporter.section("fuzz reach: share of examples that got as far as each success path")
        for line in reach.REACH.lines():
            terminalreporter.write_line(line)
