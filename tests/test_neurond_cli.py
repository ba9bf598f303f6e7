"""The neurond command: real processes, signals, TCP with tokens and TLS."""

import signal
import subprocess
import sys
import time

import grpc
import pytest

from neurontools.client import AccessDenied, Device, Session

NEUROND = [sys.executable, "-m", "neurontools.daemon.server.cli"]


def _wait_ready(address, proc, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"neurond exited early: {proc.stderr.read()}")
        try:
            with Device(address, timeout=1) as device:
                return device.topology()
        except Exception:
            time.sleep(0.1)
    raise AssertionError("neurond did not come up")


@pytest.fixture
def socket_address(socket_dir):
    return f"unix://{socket_dir / 'neurond.sock'}"


def _start(*args):
    return subprocess.Popen([*NEUROND, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_starts_serves_and_stops_cleanly_on_sigterm(socket_address, socket_dir):
    proc = _start("--instance-type", "inf2.xlarge", "--address", socket_address, "--instance-id", "i-0abc")
    try:
        topology = _wait_ready(socket_address, proc)
        assert topology.instance.instance_type == "inf2.xlarge" and topology.instance.instance_id == "i-0abc"
        session = Session(socket_address, visible_cores="0").open()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        deadline = time.monotonic() + 2
        while session.closed_reason is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert session.closed_reason == "daemon shutting down"
        session.close()
        assert not (socket_dir / "neurond.sock").exists()
        assert "shutting down" in proc.stderr.read()
    finally:
        proc.kill()


@pytest.mark.slow
def test_refuses_a_second_daemon_on_the_same_socket(socket_address):
    first = _start("--instance-type", "inf2.xlarge", "--address", socket_address)
    try:
        _wait_ready(socket_address, first)
        second = subprocess.run([*NEUROND, "--address", socket_address], capture_output=True, text=True, timeout=30)
        assert second.returncode == 1 and "already serves" in second.stderr
    finally:
        first.terminate()
        first.wait(timeout=10)


@pytest.mark.parametrize("args, message", [
    (["--instance-type", "inf9.mega"], "unknown instance type 'inf9.mega'"),
    (["--listen", "127.0.0.1:0"], "--token-file"),
    (["--topology-file", "/nonexistent.json"], "cannot read topology file"),
    (["--instance-id", "bogus"], "instance_id"),
    (["--socket-mode", "0666"], "others nothing"),
    (["--socket-mode", "0400"], "give the owner read and write"),
    (["--socket-mode", "rw"], "not an octal mode"),
])
def test_bad_arguments_fail_with_a_clear_message(args, message, socket_address):
    result = subprocess.run([*NEUROND, "--address", socket_address, *args], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 2 and message in result.stderr


def test_help_explains_the_daemon():
    result = subprocess.run([*NEUROND, "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    for text in ("--instance-type", "--listen", "--token-file", "inf2.48xlarge", "NEURON_DAEMON_ADDRESS"):
        assert text in result.stdout


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_tcp_requires_the_token(socket_address, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    token_file.chmod(0o600)
    port = _free_port()
    proc = _start("--instance-type", "inf2.xlarge", "--address", socket_address, "--listen", f"127.0.0.1:{port}",
                  "--token-file", str(token_file))
    try:
        _wait_ready(socket_address, proc)  # the local socket needs no token
        with Device(f"127.0.0.1:{port}", token="s3cret") as device:
            assert device.topology().instance.instance_type == "inf2.xlarge"
        # A wrong token and a missing one are told apart, each with its fix.
        with Device(f"127.0.0.1:{port}", token="wrong") as device, \
                pytest.raises(AccessDenied, match="^wrong token: .*--token-file"):
            device.snapshot()
        with Device(f"127.0.0.1:{port}") as device, pytest.raises(AccessDenied, match="^no token sent: .*--token-file"):
            device.snapshot()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.slow
def test_tls_on_tcp(socket_address, tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                           "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                           "-keyout", str(key), "-out", str(cert)], capture_output=True)
    assert made.returncode == 0, "openssl could not make a test certificate: run scripts/install-system-deps.sh"
    token_file = tmp_path / "token"
    token_file.write_text("tls-token")
    token_file.chmod(0o600)
    port = _free_port()
    proc = _start("--instance-type", "inf2.xlarge", "--address", socket_address, "--listen", f"localhost:{port}",
                  "--token-file", str(token_file), "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        _wait_ready(socket_address, proc)
        with Device(f"localhost:{port}", token="tls-token", root_certificates=cert.read_bytes()) as device:
            assert device.topology().instance.instance_type == "inf2.xlarge"
        with grpc.insecure_channel(f"localhost:{port}") as channel:  # plaintext is refused
            with pytest.raises(grpc.FutureTimeoutError):
                grpc.channel_ready_future(channel).result(timeout=1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# -- where the socket goes ----------------------------------------------------------------------

def test_a_missing_directory_is_refused_not_created(socket_dir):
    missing = socket_dir / "missing"
    result = subprocess.run([*NEUROND, "--address", f"unix://{missing}/x.sock"], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"the directory {missing} does not exist" in result.stderr and "creates no directories" in result.stderr
    assert not missing.exists()


def test_a_socket_path_over_the_kernel_limit_is_refused_up_front(socket_dir):
    deep = socket_dir / ("d" * (110 - len(str(socket_dir))))
    deep.mkdir()
    path = deep / "neurond.sock"
    result = subprocess.run([*NEUROND, "--address", f"unix://{path}"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "Traceback" not in result.stderr and "Failed to bind" not in result.stderr
    # 108 bytes of sun_path, one for the terminating NUL: 107 (man 7 unix)
    assert f"is {len(str(path))} bytes; the kernel allows at most 107" in result.stderr
    assert "choose a shorter --address" in result.stderr


def test_a_file_that_is_not_a_socket_is_left_alone(socket_dir):
    precious = socket_dir / "notes.txt"
    precious.write_text("keep me")
    result = subprocess.run([*NEUROND, "--address", f"unix://{precious}"], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 2 and "exists and is not a socket" in result.stderr
    assert precious.read_text() == "keep me"
