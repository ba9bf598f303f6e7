"""Every tool reaches a remote (TCP, token, TLS) daemon the same way, and says what failed when it cannot.

The daemon runs in this process on TCP with a token and TLS; the tools run as the user runs them
(subprocesses), with flags or with the environment variables of docs/connecting.md.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from neurontools import connection_options
from neurontools.client import AccessDenied, DaemonUnavailable, Device
from neurontools.daemon.server.embedded import running_daemon
from neurontools.lab.prometheus_server import PROMETHEUS

TOKEN = "tok-3f9a"

# Every program that talks to neurond, as `python -m module` (scenario: its `run` command).
TOOLS = {
    "neuron-ls": ["neurontools.ls"],
    "neuron-monitor": ["neurontools.monitor.cli"],
    "neuron-top": ["neurontools.top"],
    "neuron-fault": ["neurontools.fault.cli"],
    "neuron-workload": ["neurontools.workloads.cli"],
    "neuron-scenario": ["neurontools.scenarios.cli", "run"],
    "neuron-lab": ["neurontools.lab.cli"],
    "neuron-profile": ["neurontools.profile.cli", "capture"],
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _certificate(directory: Path, name: str) -> tuple[Path, Path]:
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                           "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                           "-keyout", str(key), "-out", str(cert)], capture_output=True)
    assert made.returncode == 0, "openssl could not make a test certificate: run scripts/install-system-deps.sh"
    return key, cert


@pytest.fixture(scope="module")
def remote(tmp_path_factory):
    """A TLS daemon with a token on TCP, a plaintext one with the same token, and the client files."""
    directory = tmp_path_factory.mktemp("remote")
    key, cert = _certificate(directory, "server")
    _, other_ca = _certificate(directory, "other")
    token_file = directory / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    tls_port, plain_port = _free_port(), _free_port()
    with running_daemon("inf2.xlarge", listen=f"127.0.0.1:{tls_port}", token=TOKEN, tls_cert=cert.read_bytes(),
                        tls_key=key.read_bytes()), \
            running_daemon("inf2.xlarge", listen=f"127.0.0.1:{plain_port}", token=TOKEN):
        yield {"tls": f"127.0.0.1:{tls_port}", "plain": f"127.0.0.1:{plain_port}", "ca": str(cert),
               "other_ca": str(other_ca), "token_file": str(token_file), "dir": directory}


def _run(module: list[str], *args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NEURON_DAEMON_")}
    return subprocess.run([sys.executable, "-m", *module, *args], capture_output=True, text=True, timeout=timeout,
                          env={**environ, **(env or {})})


# -- the token file -----------------------------------------------------------------------------

@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_token_file_others_can_read_is_refused_with_the_chmod_to_run(tmp_path, mode):
    path = tmp_path / "token"
    path.write_text("secret\n")
    path.chmod(mode)
    with pytest.raises(connection_options.ConnectionOptionError) as raised:
        connection_options.resolve("127.0.0.1:1", token_file=str(path))
    assert f"mode {mode:04o}" in str(raised.value) and f"chmod 600 {path}" in str(raised.value)


def test_a_private_token_file_is_read_from_the_flag_or_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "token"
    path.write_text("  secret\n")
    path.chmod(0o600)
    assert connection_options.resolve("127.0.0.1:1", token_file=str(path)).token == "secret"
    monkeypatch.setenv("NEURON_DAEMON_TOKEN_FILE", str(path))
    monkeypatch.setenv("NEURON_DAEMON_TOKEN", "literal")
    assert connection_options.resolve("127.0.0.1:1").token == "secret"  # the file wins over the literal
    path.chmod(0o644)
    with pytest.raises(connection_options.ConnectionOptionError, match=r"\$NEURON_DAEMON_TOKEN_FILE.*chmod 600"):
        connection_options.resolve("127.0.0.1:1")


def test_an_empty_token_file_or_a_ca_file_without_a_certificate_is_refused(tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("\n")
    empty.chmod(0o600)
    with pytest.raises(connection_options.ConnectionOptionError, match="is empty"):
        connection_options.resolve("127.0.0.1:1", token_file=str(empty))
    with pytest.raises(connection_options.ConnectionOptionError, match="holds no PEM certificate"):
        connection_options.resolve("127.0.0.1:1", ca_file=str(empty))
    with pytest.raises(connection_options.ConnectionOptionError, match="cannot read the CA certificate"):
        connection_options.resolve("127.0.0.1:1", ca_file=str(tmp_path / "absent.pem"))


def test_the_ca_applies_to_tcp_only(tmp_path, monkeypatch):
    monkeypatch.setenv("NEURON_DAEMON_CA_FILE", str(tmp_path / "absent.pem"))
    assert connection_options.resolve("unix:///tmp/x.sock").root_certificates is None
    with pytest.raises(connection_options.ConnectionOptionError, match=r"\$NEURON_DAEMON_CA_FILE"):
        connection_options.resolve("127.0.0.1:1")


@pytest.mark.slow
def test_neurond_refuses_a_token_file_others_can_read(tmp_path, socket_dir):
    token_file = tmp_path / "token"
    token_file.write_text("secret\n")
    token_file.chmod(0o644)
    result = _run(["neurontools.daemon.server.cli"], "--address", f"unix://{socket_dir}/n.sock", "--listen",
                  f"127.0.0.1:{_free_port()}", "--token-file", str(token_file), timeout=30)
    assert result.returncode == 2 and f"chmod 600 {token_file}" in result.stderr


# -- every tool, the same options ---------------------------------------------------------------

@pytest.mark.parametrize("tool", TOOLS)
def test_every_tool_takes_the_same_connection_options(tool):
    result = _run(TOOLS[tool], "--help")
    assert result.returncode == 0, result.stderr
    for flag in ("--address", "--token-file", "--ca-file"):
        assert flag in result.stdout, (tool, flag)


@pytest.mark.slow
def test_neuron_ls_reaches_a_tls_daemon_with_flags_or_environment(remote):
    flags = _run(TOOLS["neuron-ls"], "-j", "--address", remote["tls"], "--token-file", remote["token_file"],
                 "--ca-file", remote["ca"])
    assert flags.returncode == 0, flags.stderr
    assert [device["nc_count"] for device in json.loads(flags.stdout)] == [2]  # inf2.xlarge: one chip
    env = _run(TOOLS["neuron-ls"], "-j", env={"NEURON_DAEMON_ADDRESS": remote["tls"],
                                              "NEURON_DAEMON_TOKEN_FILE": remote["token_file"],
                                              "NEURON_DAEMON_CA_FILE": remote["ca"]})
    assert env.returncode == 0 and json.loads(env.stdout) == json.loads(flags.stdout)


@pytest.mark.slow
def test_neuron_monitor_fault_and_scenario_reach_a_tls_daemon(remote, tmp_path):
    connection = ["--address", remote["tls"], "--token-file", remote["token_file"], "--ca-file", remote["ca"]]
    monitor = subprocess.Popen([sys.executable, "-m", *TOOLS["neuron-monitor"], *connection],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        report = json.loads(monitor.stdout.readline())
    finally:
        monitor.kill()
        monitor.wait()
    assert report["neuron_hardware_info"]["error"] == "" and report["neuron_hardware_info"]["neuron_device_count"] == 1

    injected = _run(TOOLS["neuron-fault"], *connection, "inject", "mem-ecc-corrected", "--count", "2")
    assert injected.returncode == 0 and "fault" in injected.stdout, injected.stderr

    scenario = tmp_path / "s.toml"
    scenario.write_text('name = "remote"\nduration = 0.3\n[[faults]]\nat = 0.1\nkind = "sram-ecc-corrected"\n')
    played = _run(TOOLS["neuron-scenario"], str(scenario), *connection)
    assert played.returncode == 0, played.stderr
    assert json.loads(played.stdout)["faults"][0]["kind"] == "sram-ecc-corrected"


@pytest.mark.slow
def test_neuron_lab_plays_on_a_tls_daemon_and_its_monitor_gets_the_credentials(remote, tmp_path):
    if not os.access(PROMETHEUS, os.X_OK):
        pytest.fail(f"{PROMETHEUS} is missing: run scripts/install-system-deps.sh (Debian's prometheus)")
    scenario = tmp_path / "s.toml"
    scenario.write_text('name = "remote"\nduration = 2\n[[faults]]\nat = 0.5\nkind = "sram-ecc-corrected"\n')
    played = _run(TOOLS["neuron-lab"], "--scenario", str(scenario), "--time-scale", "20", "--address", remote["tls"],
                  "--token-file", remote["token_file"], "--ca-file", remote["ca"], timeout=180)
    # The lab waits for Prometheus to scrape neuron_monitor_up == 1 before it plays: the monitor it started
    # reached the TLS daemon with the token and the CA, not only the lab itself.
    assert played.returncode == 0, played.stdout[-2000:] + played.stderr[-2000:]
    assert f"neurond on {remote['tls']}" in played.stdout and "expectations met" in played.stdout


def test_neuron_lab_refuses_an_unsafe_token_file_before_anything_starts(remote, tmp_path):
    unsafe = tmp_path / "token"
    unsafe.write_text(TOKEN)
    unsafe.chmod(0o644)
    refused = _run(TOOLS["neuron-lab"], "--address", remote["plain"], "--token-file", str(unsafe))
    assert refused.returncode == 2
    assert refused.stderr.strip() == (f"neuron-lab: the token file {unsafe} (--token-file) is accessible by group "
                                      f"or others (mode 0644); a token is a password: run 'chmod 600 {unsafe}'")


def test_neuron_top_and_neuron_workload_take_the_endpoint_from_their_flags(remote):
    from neurontools.top.cli import parser as top_parser
    from neurontools.top.sources.live import LiveSource
    from neurontools.workloads.cli import build_parser as workload_parser

    connection = ["--address", remote["tls"], "--token-file", remote["token_file"], "--ca-file", remote["ca"]]
    endpoint = connection_options.from_arguments(top_parser().parse_args(connection))
    assert endpoint == connection_options.from_arguments(workload_parser().parse_args(connection))
    source = LiveSource(endpoint, interval=0.1)
    try:
        frame = source.read()
    finally:
        source.close()
    assert frame.report.neuron_hardware_info.error == "" and frame.report.neuron_hardware_info.neuron_device_count == 1


@pytest.mark.slow
def test_neuron_workload_runs_on_a_tls_daemon(remote):
    result = _run(TOOLS["neuron-workload"], "--address", remote["tls"], "--token-file", remote["token_file"],
                  "--ca-file", remote["ca"], "--estimate", "bert-tiny:cores=1", timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["address"] == remote["tls"]


# -- what failed --------------------------------------------------------------------------------

def test_errors_say_what_failed(remote, socket_dir):
    def failure(address, **kwargs) -> str:
        with Device(address, timeout=3, **kwargs) as device, pytest.raises((DaemonUnavailable, AccessDenied)) as e:
            device.snapshot()
        return str(e.value)

    ca, other = Path(remote["ca"]).read_bytes(), Path(remote["other_ca"]).read_bytes()
    assert "if it serves TLS" in failure(remote["tls"], token=TOKEN) and "--ca-file" in failure(remote["tls"])
    assert "TLS handshake failed: the daemon's certificate is not trusted" in failure(
        remote["tls"], token=TOKEN, root_certificates=other)
    assert "TLS handshake failed: the daemon does not serve TLS on this port" in failure(
        remote["plain"], token=TOKEN, root_certificates=ca)
    assert failure(remote["tls"], root_certificates=ca).startswith("no token sent")
    assert failure(remote["tls"], token="nope", root_certificates=ca).startswith("wrong token")
    assert failure(f"127.0.0.1:{_free_port()}").endswith("nothing is listening there (connection refused); start "
                                                         "it with 'neurond' (or point --address or "
                                                         "$NEURON_DAEMON_ADDRESS at a running one)")
    assert f"there is no socket {socket_dir}/absent.sock" in failure(f"unix://{socket_dir}/absent.sock")
    with Device(remote["tls"], token=TOKEN, root_certificates=ca) as device:  # and right, it works
        assert device.topology().instance.instance_type == "inf2.xlarge"


@pytest.mark.slow
def test_neuron_ls_says_a_tls_daemon_needs_the_ca(remote):
    result = _run(TOOLS["neuron-ls"], "--address", remote["tls"], "--token-file", remote["token_file"])
    assert result.returncode == 1
    assert "Failed to discover neuron devices" in result.stderr and "--ca-file" in result.stderr
    untrusted = _run(TOOLS["neuron-ls"], "--address", remote["tls"], "--token-file", remote["token_file"],
                     "--ca-file", remote["other_ca"])
    assert untrusted.returncode == 1 and "not trusted" in untrusted.stderr
    assert len(untrusted.stderr.splitlines()) == 1, untrusted.stderr  # the FATA line, no gRPC log beside it
    unsafe = remote["dir"] / "unsafe-token"
    unsafe.write_text(TOKEN)
    unsafe.chmod(0o644)
    refused = _run(TOOLS["neuron-ls"], "--address", remote["tls"], "--token-file", str(unsafe), "--ca-file",
                   remote["ca"])
    assert refused.returncode == 1 and f"chmod 600 {unsafe}" in refused.stderr
