"""neuron-node: tool launchers at the AWS paths (always under a temporary --prefix here, never the real
/opt/aws/neuron), and `neuron-node run` with real consumers: a Slurm gpu/nrt-style sysfs reader and
unmodified Ray from PyPI, each seeing the software node at the real paths."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from neurontools.daemon.device import topology as topo
from neurontools.daemon.server.embedded import running_daemon
from neurontools.node import launchers
from neurontools.node.cli import main as node_main

CONSUMERS = Path(__file__).parent / "consumers"
NODE = [sys.executable, "-m", "neurontools.node.cli"]


def _require(condition: bool, why: str) -> None:
    """A real-component test that cannot run here says so loudly, and fails in CI."""
    if condition:
        return
    message = f"CANNOT RUN HERE: {why}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _mount_namespaces_work() -> tuple[bool, str]:
    if not sys.platform.startswith("linux"):
        return False, f"mount namespaces need Linux (this is {sys.platform})"
    if os.geteuid() != 0:
        return False, "neuron-node run needs root; run the suite as root to test it"
    result = subprocess.run(["unshare", "-m", "true"], capture_output=True, text=True)
    if result.returncode != 0:
        return False, f"`unshare -m true` fails in this sandbox: {result.stderr.strip()}"
    return True, ""


# -- install / uninstall / status -------------------------------------------------------------------

def test_install_puts_launchers_that_reach_the_daemon(tmp_path, capsys):
    prefix = tmp_path / "aws-neuron"
    with running_daemon("inf2.xlarge", instance_id="i-0feedfacecafe0001") as daemon:
        assert node_main(["install", "--prefix", str(prefix), "--address", daemon.address]) == 0
        for tool in ("neuron-ls", "neuron-top", "neuron-monitor"):
            path = prefix / "bin" / tool
            assert os.access(path, os.X_OK), tool
        env = {k: v for k, v in os.environ.items() if k != "NEURON_DAEMON_ADDRESS"}
        listing = subprocess.run([str(prefix / "bin/neuron-ls"), "--json-output"], capture_output=True,
                                 text=True, env=env, timeout=60)
        assert listing.returncode == 0, listing.stderr
        devices = json.loads(listing.stdout)
        assert [d["nc_count"] for d in devices] == [2]  # inf2.xlarge: one device, two cores (reference §0.1)
        capsys.readouterr()
        assert node_main(["status", "--prefix", str(prefix)]) == 0
        out = capsys.readouterr().out
        assert f"{prefix}/bin/neuron-ls: installed" in out
        assert f"neurond at {daemon.address} (set at install): serving an inf2.xlarge (1 devices, 2 NeuronCores)" in out
    assert node_main(["status", "--prefix", str(prefix)]) == 1
    assert "not reachable" in capsys.readouterr().out


def test_the_launchers_are_the_packages_console_scripts():
    from importlib.metadata import entry_points
    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    for tool, module in launchers.TOOLS.items():
        assert scripts[tool] == f"{module}:main"


def test_uninstall_removes_exactly_what_install_created(tmp_path, capsys):
    prefix = tmp_path / "opt/aws/neuron"
    (tmp_path / "opt").mkdir()
    (tmp_path / "opt/keep.txt").write_text("not ours")
    assert node_main(["install", "--prefix", str(prefix)]) == 0
    assert node_main(["uninstall", "--prefix", str(prefix)]) == 0
    assert sorted(p.name for p in (tmp_path / "opt").iterdir()) == ["keep.txt"]  # aws/, neuron/, bin/ gone
    assert node_main(["uninstall", "--prefix", str(prefix)]) == 2
    assert "installed nothing" in capsys.readouterr().err


def test_a_real_aws_tool_is_never_overwritten_nor_removed(tmp_path, capsys):
    prefix = tmp_path / "neuron"
    (prefix / "bin").mkdir(parents=True)
    real = prefix / "bin/neuron-ls"
    real.write_text("#!/bin/sh\necho the real one\n")
    assert node_main(["install", "--prefix", str(prefix)]) == 2
    err = capsys.readouterr().err
    assert "already exists and neuron-node did not install it" in err and "nothing changed" in err
    assert real.read_text() == "#!/bin/sh\necho the real one\n"
    assert sorted(os.listdir(prefix / "bin")) == ["neuron-ls"]
    real.unlink()
    assert node_main(["install", "--prefix", str(prefix)]) == 0
    # An AWS package later replaces one of ours: uninstall keeps it and says so.
    (prefix / "bin/neuron-top").write_text("#!/bin/sh\necho upgraded by aws\n")
    capsys.readouterr()
    assert node_main(["uninstall", "--prefix", str(prefix)]) == 1
    assert "kept" in capsys.readouterr().err
    assert sorted(os.listdir(prefix / "bin")) == ["neuron-top"]
    assert (prefix / "bin/neuron-top").read_text().endswith("upgraded by aws\n")
    assert node_main(["status", "--prefix", str(prefix)]) == 1
    assert "neuron-top: changed since install" in capsys.readouterr().out


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_install_without_permission_says_so_and_changes_nothing():
    top = Path(tempfile.mkdtemp(prefix="nt-node-"))
    try:
        top.chmod(0o755)  # root's, not writable by others
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        probe = subprocess.run([*as_nobody, sys.executable, "-c", "import neurontools"], capture_output=True)
        _require(probe.returncode == 0, "user nobody cannot run this Python (a private venv); "
                                        "the permission path is then untested")
        result = subprocess.run([*as_nobody, *NODE, "install", "--prefix", str(top / "neuron")],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2
        assert f"cannot write to {top} (permission denied): nothing changed" in result.stderr
        assert "--prefix DIR" in result.stderr
        assert os.listdir(top) == []
    finally:
        shutil.rmtree(top, ignore_errors=True)


# -- neuron-node run: real consumers at the real paths ---------------------------------------------

def test_run_refuses_clearly_without_what_it_needs(tmp_path, capsys):
    assert node_main(["run", "--", "true"]) == 2
    assert "nothing to show" in capsys.readouterr().err
    assert node_main(["run", "--sysfs-root", str(tmp_path), "--", "true"]) == 2
    assert f"no Neuron sysfs tree under {tmp_path}" in capsys.readouterr().err


def test_run_without_root_is_refused(monkeypatch, tmp_path, capsys):
    (tmp_path / "devices/virtual/neuron_device").mkdir(parents=True)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert node_main(["run", "--sysfs-root", str(tmp_path), "--", "true"]) == 2
    assert "needs root" in capsys.readouterr().err


def _expected_gres(instance_type: str) -> list[str]:
    # Independent of our topology code: the reference's words (neuron-tools.md §0.3) — inf2.24xlarge
    # is a chain 0-1-...-5, inf2.48xlarge a ring of 12 — and Slurm's row rule (1 link, -1 self, 0 none).
    count = {"inf2.24xlarge": 6, "inf2.48xlarge": 12}[instance_type]
    lines = []
    for d in range(count):
        if instance_type == "inf2.48xlarge":
            neighbours = {(d - 1) % count, (d + 1) % count}
        else:
            neighbours = {n for n in (d - 1, d + 1) if 0 <= n < count}
        row = ",".join("1" if i in neighbours else "-1" if i == d else "0" for i in range(count))
        lines.append(f"Name=gpu Type=inferentia2 File=/dev/neuron{d} Links={row}")
    return lines


@pytest.mark.slow
@pytest.mark.parametrize("instance_type", ["inf2.24xlarge", "inf2.48xlarge"])
def test_slurm_style_reader_sees_the_devices_at_the_real_sysfs_path(tmp_path, instance_type):
    works, why = _mount_namespaces_work()
    _require(works, why)
    root = tmp_path / "sysfs"
    host_had = os.path.exists("/sys/devices/virtual/neuron_device")
    with running_daemon(instance_type, sysfs_root=str(root), sysfs_period=0.1):
        result = subprocess.run([*NODE, "run", "--sysfs-root", str(root), "--", sys.executable,
                                 str(CONSUMERS / "slurm_nrt_reader.py")], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == _expected_gres(instance_type)
    assert os.path.exists("/sys/devices/virtual/neuron_device") == host_had  # only the namespace saw it


@pytest.mark.slow
def test_run_shows_live_counters_links_and_leaves_the_host_untouched(tmp_path):
    works, why = _mount_namespaces_work()
    _require(works, why)
    from neurontools.client import Session
    host_had = {p: os.path.exists(p) for p in ("/sys/class/neuron_device", "/sys/module/neuron", "/opt/aws/neuron/bin")}
    root = tmp_path / "sysfs"
    with running_daemon("inf2.xlarge", sysfs_root=str(root), sysfs_period=0.05) as daemon:
        script = ("cat /sys/class/neuron_device/neuron0/info/architecture/device_name "
                  "/sys/module/neuron/version "
                  "/sys/devices/virtual/neuron_device/neuron0/neuron_core0/stats/memory_usage/device_mem/tensors/total; "
                  "ls /sys/class/net >/dev/null && echo net-still-there")
        with Session(daemon.address, visible_cores="0") as session:
            session.allocate((512, 512), "float32", core_id=0)  # 1 MiB of tensors on core 0
            total = root / "devices/virtual/neuron_device/neuron0/neuron_core0/stats/memory_usage/device_mem/tensors/total"
            deadline = time.monotonic() + 5
            while total.read_text() != f"{1 << 20}\n":
                assert time.monotonic() < deadline
                time.sleep(0.02)
            result = subprocess.run([*NODE, "run", "--sysfs-root", str(root), "--", "sh", "-c", script],
                                    capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == ["Inferentia2", "2.26.5.0", str(1 << 20), "net-still-there"]
    assert {p: os.path.exists(p) for p in host_had} == host_had


@pytest.mark.slow
def test_unmodified_ray_detects_and_schedules_on_the_cores(tmp_path):
    """Ray runs /opt/aws/neuron/bin/neuron-ls --json-output (ray/_private/accelerators/neuron.py, a
    hard-coded path): we install the launchers under a temporary prefix and show them at that path
    with `neuron-node run --prefix`, never touching the real /opt."""
    works, why = _mount_namespaces_work()
    _require(works, why)
    try:
        import ray  # noqa: F401
    except ImportError:
        _require(False, "ray is not installed (it is in the test extra: pip install -e .[test])")
    prefix = tmp_path / "neuron"
    host_had = os.path.exists("/opt/aws/neuron/bin/neuron-ls")
    with running_daemon("inf2.48xlarge", socket_dir="/tmp") as daemon:
        assert node_main(["install", "--prefix", str(prefix), "--address", daemon.address]) == 0
        env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
        env.pop("NEURON_RT_VISIBLE_CORES", None)
        result = subprocess.run([*NODE, "run", "--prefix", str(prefix), "--address", daemon.address, "--",
                                 sys.executable, str(CONSUMERS / "ray_neuron_cores.py")],
                                capture_output=True, text=True, timeout=240, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["neuron_cores"] == topo.lookup("inf2.48xlarge").core_count == 24  # reference §0.1: 24 cores
    two, one = report["tasks"]
    for task, wanted in ((two, 2), (one, 1)):
        assigned = sorted(int(core) for core in task["ray"])
        assert len(assigned) == wanted
        assert task["env"] == ",".join(task["ray"])  # what Ray set, what the runtime reads
        assert task["session"] == assigned           # the Session opened exactly those cores
    assert not set(two["session"]) & set(one["session"])
    assert os.path.exists("/opt/aws/neuron/bin/neuron-ls") == host_had  # the real /opt was never touched
