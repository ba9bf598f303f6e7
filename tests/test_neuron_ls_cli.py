"""neuron-ls as a user runs it: a real subprocess against an in-process neurond (or none at all)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

import neurontools

from neurontools.client import Session
from neurontools.ls.options import USAGE
from neurontools.testing import embedded_daemon

pytestmark = pytest.mark.slow

GOLDEN = Path(__file__).parent / "golden" / "neuron-ls"
INSTANCE_ID = "i-0843f604e49a05017"  # the reference capture's, so its table is our expected output
_SCRIPT = Path(sys.executable).parent / "neuron-ls"
# The installed console script when there is one, else the module: both are what a user runs.
NEURON_LS = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "neurontools.ls"]


def neuron_ls(*flags: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    environment = {k: v for k, v in os.environ.items() if k != "NEURON_DAEMON_ADDRESS"}
    return subprocess.run([*NEURON_LS, *flags], capture_output=True, timeout=30,
                          env={**environment, **(env or {})}, cwd=Path(__file__).parents[1])


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    with embedded_daemon(instance_type="inf2.48xlarge", instance_id=INSTANCE_ID) as running:
        yield running


def test_help_prints_usage_on_stdout() -> None:
    result = neuron_ls("--help")
    assert (result.returncode, result.stdout.decode(), result.stderr) == (0, USAGE, b"")


def test_version() -> None:
    result = neuron_ls("--version")
    assert (result.returncode, result.stdout) == (0, f"neuron-ls {neurontools.__version__}\n".encode())


def test_unknown_flag_prints_the_error_and_usage_on_stdout_and_exits_1() -> None:
    result = neuron_ls("--bogus")
    assert result.returncode == 1 and result.stderr == b""
    assert result.stdout.decode() == "unknown flag `bogus'\n\n" + USAGE


def test_no_daemon_exits_1_with_one_logrus_line_on_stderr_and_nothing_on_stdout(socket_dir: Path) -> None:
    absent = f"unix://{socket_dir}/neurond.sock"
    for result in (neuron_ls("--address", absent), neuron_ls(env={"NEURON_DAEMON_ADDRESS": absent})):
        assert result.returncode == 1 and result.stdout == b""
        lines = result.stderr.decode().splitlines()
        assert len(lines) == 1, lines
        assert re.fullmatch(r'FATA\[\d{4}\] Failed to discover neuron devices {13}error="cannot reach neurond at '
                            + re.escape(absent) + r": there is no socket " + re.escape(absent[len("unix://"):])
                            + r"; start it with 'neurond'.*\"", lines[0]), lines[0]


def test_default_table_from_a_live_daemon_equals_the_real_capture(address: str) -> None:
    result = neuron_ls("--address", address)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (GOLDEN / "reference" / "inf2.48xlarge-default.txt").read_bytes()


def test_address_comes_from_the_environment_too(address: str) -> None:
    result = neuron_ls("-t", env={"NEURON_DAEMON_ADDRESS": address})
    assert result.stdout == (GOLDEN / "generated" / "inf2.48xlarge" / "idle-topology.txt").read_bytes()


def test_json_from_a_live_daemon(address: str) -> None:
    result = neuron_ls("--address", address, "--json-output")
    assert result.stdout == (GOLDEN / "generated" / "inf2.48xlarge" / "idle-json.json").read_bytes()
    jsonschema.validate(json.loads(result.stdout), json.loads((GOLDEN / "neuron-ls.schema.json").read_text()))


def test_box_drawing_is_utf8_whatever_the_locale(address: str) -> None:
    result = neuron_ls("--address", address, "-t", env={"PYTHONIOENCODING": "ascii", "LC_ALL": "C"})
    assert result.returncode == 0 and "◄––►".encode() in result.stdout


def test_show_all_procs_lists_the_neuron_ls_call_itself(address: str) -> None:
    process = subprocess.Popen([*NEURON_LS, "--address", address, "-a"], stdout=subprocess.PIPE)
    stdout, _ = process.communicate(timeout=30)
    rows = [line for line in stdout.decode().splitlines()
            if line.startswith("|") and line.split("|")[6].strip() == str(process.pid)]
    assert len(rows) == 12  # on every device, as a non-runtime process
    assert all(row.endswith("| NA      |") for row in rows)


def _device_row(table: str, device: int) -> str:
    return next(line for line in table.splitlines() if line.startswith(f"| {device:<6} |"))


def test_a_live_session_has_a_row_while_it_runs_and_none_after(address: str) -> None:
    command = "python train.py --model llama-3-8b --epochs 3"
    with Session(address, visible_cores="2-3", pid=424242, command=command, runtime_version="2.30.51"):
        table = neuron_ls("--address", address).stdout.decode()
        assert _device_row(table, 1).split("|")[7:11] == [" 424242 ", " 72-95,168-191 ", " 3    ", " 2.30.51 "]
        assert _device_row(table, 0).split("|")[7] == " NA     "
        wide = neuron_ls("--address", address, "--wide").stdout.decode()
        assert f"| 424242 | {command}" in wide
    idle = (GOLDEN / "reference" / "inf2.48xlarge-default.txt").read_bytes()
    deadline = time.monotonic() + 10  # the daemon ends the session when it sees the stream close
    while (output := neuron_ls("--address", address).stdout) != idle and time.monotonic() < deadline:
        time.sleep(0.1)
    assert output == idle


def test_neuron_ls_never_imports_numpy_or_pydantic(address: str) -> None:
    # start-up time is most of neuron-ls's answer time (bench/bench_neuron_ls.py)
    probe = ("import sys; from neurontools.ls.cli import main; main(['--address', sys.argv[1], '-a']); "
             "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'pydantic', 'ml_dtypes'}); "
             "print(heavy, file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", probe, address], capture_output=True, timeout=30,
                            cwd=Path(__file__).parents[1])
    assert result.stderr.decode().strip() == "[]"
