"""neurond --sysfs-root: the driver's tree against the real inf2.xlarge listing (reference §6.2), its
formats, live counters, write to clear, read-only files, bad roots and removal on shutdown."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from neurontools._proto import neurond_pb2 as pb
from neurontools.client import Device, Session
from neurontools.daemon.server.embedded import running_daemon
from neurontools.daemon.sysfs.root import SysfsRoot, SysfsRootError
from neurontools.kernels.examples import mlp_program

GOLDEN = Path(__file__).parent / "golden" / "sysfs"
DOCS = Path(__file__).parent.parent / "docs" / "sysfs.md"
NEVER = 3600.0  # refresh period for tests that call refresh() themselves
MIB = 1 << 20

# Files of the real listing we leave out on purpose; docs/sysfs.md must say why for each.
DOCUMENTED_ABSENT = {"neuronN/dev", "neuronN/info/notify_delay"}
# Files the reference lists beyond its partial capture (§6.2 "Additionally present", §6.4), by name.
HOST_CATEGORIES = ("application_memory", "constants", "dma_buffers", "dma_rings", "driver_memory",
                   "notifications", "tensors", "uncategorized")
# inferentia2.md §4.3: the driver's status names for the outcomes our runtime produces.
STATUS_NAMES = ("success", "execute_completed_with_error", "execute_completed_with_num_error", "timeout",
                "exec_bad_input", "execute_failed_to_queue")
ADDITIONS = (
    {"neuronN/stats/power/utilization", "neuronN/reset"}
    | {f"neuronN/stats/hardware/{n}/{f}" for n in ("mem_ecc_uncorrected", "sram_ecc_uncorrected")
       for f in ("present", "total")}
    | {f"neuronN/stats/memory_usage/host_mem/{c}/{f}" for c in HOST_CATEGORIES for f in ("peak", "present", "total")}
    | {f"neuronN/neuron_coreN/stats/status/{s}/{f}" for s in STATUS_NAMES for f in ("present", "total")}
)


def _expand(line: str) -> list[str]:
    match = re.fullmatch(r"(.*)\{(.*)\}", line)
    if not match:
        return [line]
    return [match.group(1) + part for part in match.group(2).split(",")]


def reference_listing() -> tuple[list[str], set[str]]:
    text = (GOLDEN / "inf2.xlarge-listing.txt").read_text().splitlines()
    dirs = [line.removeprefix("/sys/devices/virtual/neuron_device") for line in text if line.startswith("/sys/")]
    files_at = text.index(next(line for line in text if line.startswith("$ find ... -type f")))
    files = {f for line in text[files_at + 1:] if line.strip() for f in _expand(line.strip())}
    return dirs, files


def our_listing(root: Path) -> tuple[list[str], set[str]]:
    base = root / "devices/virtual/neuron_device"
    dirs = [""] + sorted(f"/{p.relative_to(base)}" for p in base.glob("*") if p.is_dir() and not p.is_symlink())
    dirs += sorted(f"/{p.relative_to(base)}" for p in base.glob("*/*") if p.is_dir() and not p.is_symlink())
    files = set()
    for dirpath, dirnames, filenames in os.walk(base):
        for name in filenames:
            files.add(re.sub(r"\d+", "N", str(Path(dirpath, name).relative_to(base))))
    return dirs, files


def read(root: Path, rel: str) -> str:
    return (root / "devices/virtual/neuron_device" / rel).read_text()


def number(root: Path, rel: str) -> int:
    return int(read(root, rel))


@pytest.fixture
def xlarge(tmp_path):
    root = tmp_path / "sysfs"
    with running_daemon("inf2.xlarge", sysfs_root=str(root), sysfs_period=NEVER) as daemon:
        yield daemon, root, daemon.server.sysfs.tree


# -- the tree against the real listing ------------------------------------------------------------

def test_tree_matches_the_real_inf2_xlarge_listing(xlarge):
    _, root, _ = xlarge
    real_dirs, real_files = reference_listing()
    dirs, files = our_listing(root)
    # `power/` is the generic Linux runtime-PM directory ("not created or controlled by our sysfs metrics").
    assert sorted(dirs) == sorted(d for d in real_dirs if not d.endswith("/power"))
    assert files == (real_files - DOCUMENTED_ABSENT) | ADDITIONS
    docs = DOCS.read_text()
    for absent in (*DOCUMENTED_ABSENT, "power/", "uevent", "mem_ecc_repairable_uncorrected"):
        assert absent.removeprefix("neuronN/") in docs, f"docs/sysfs.md must say why {absent} is absent"


def test_device_values_match_the_real_inf2_xlarge(xlarge):
    _, root, _ = xlarge
    lines = (GOLDEN / "inf2.xlarge-values.txt").read_text().splitlines()
    expected = dict(re.fullmatch(r"(\S+)\s+= (.*)", line).groups() for line in lines if " = " in line)
    for rel, value in expected.items():
        ours = read(root, f"neuron0/{rel}")
        if value.startswith("(empty"):
            assert ours == "\n"
        elif value.startswith("<REDACTED"):
            assert re.fullmatch(r"\S+\n", ours)
        else:
            assert ours == value + "\n", rel
    assert read(root, "neuron0/neuron_core1/info/architecture/arch_type") == "NCv2\n"  # §6.3 example
    assert (root / "module/neuron/version").read_text().strip()


@pytest.mark.parametrize("instance_type,expected", [
    ("inf2.48xlarge", {0: "11, 1", 5: "4, 6", 11: "10, 0"}),  # ring, [prev, next] (reference §0.3)
    ("inf2.24xlarge", {0: "1", 1: "0, 2", 5: "4"}),          # chain without wrap
])
def test_connected_devices_read_like_neuron_ls(tmp_path, instance_type, expected):
    root = tmp_path / "sysfs"
    with running_daemon(instance_type, sysfs_root=str(root), sysfs_period=NEVER):
        for device, text in expected.items():
            assert read(root, f"neuron{device}/connected_devices") == text + "\n"
        base = root / "devices/virtual/neuron_device"
        count = 12 if instance_type == "inf2.48xlarge" else 6
        assert sorted(os.listdir(root / "class/neuron_device")) == sorted(f"neuron{i}" for i in range(count))
        link = root / "class/neuron_device/neuron3"
        assert os.readlink(link) == "../../devices/virtual/neuron_device/neuron3"
        assert link.resolve() == (base / "neuron3").resolve()
        assert (base / "neuron3/subsystem").resolve() == (root / "class/neuron_device").resolve()


def test_power_utilization_format_and_model(tmp_path):
    from neurontools.daemon.sysfs.values import PowerModel
    model = PowerModel(device_count=1, window_seconds=60)
    idle = pb.Snapshot(monotonic_ns=0)
    idle.cores.add(core_id=0, device_index=0, occupied_ns=0)
    idle.cores.add(core_id=1, device_index=0, occupied_ns=0)
    line = model.sample(idle, 1787754541.0)[0]
    assert line == "POWER_STATUS_NO_DATA,1787754540,0.00,0.00,0.00"
    busy = pb.Snapshot(monotonic_ns=10**9)
    busy.cores.add(core_id=0, device_index=0, occupied_ns=10**9)   # both cores busy all second
    busy.cores.add(core_id=1, device_index=0, occupied_ns=10**9)
    model.sample(busy, 1787754542.0)
    later = pb.Snapshot(monotonic_ns=2 * 10**9)
    later.cores.add(core_id=0, device_index=0, occupied_ns=10**9)  # then idle
    later.cores.add(core_id=1, device_index=0, occupied_ns=10**9)
    model.sample(later, 1787754543.0)
    line = model.sample(later, 1787754600.5)[0]  # a new minute publishes the last one
    # the device busy (18.86), then idle (0.56): the reference's §6.4 figures; average 9.71
    assert line == "POWER_STATUS_VALID,1787754600,0.56,18.86,9.71"
    assert re.fullmatch(r"POWER_STATUS_(VALID|NO_DATA|INVALID),\d+,\d+\.\d\d,\d+\.\d\d,\d+\.\d\d", line)


# -- live counters, write to clear ------------------------------------------------------------------

def _run_mlp(session, core, times):
    model = session.load_model("mlp", {core: mlp_program()})
    x = session.allocate((128, 64), "float32", core_id=core)
    out, rowmax = session.allocate((64, 256), "float32", core_id=core), session.allocate((64, 1), "float32", core_id=core)
    return [model.execute(xT=x, out=out, rowmax=rowmax) for _ in range(times)]


def _wait_closed(address, session_id):
    deadline = time.monotonic() + 5
    while any(s.session_id == session_id for s in Device(address).snapshot().sessions):
        assert time.monotonic() < deadline, "session did not close"
        time.sleep(0.02)


def test_execution_counters_are_live_survive_the_session_and_clear_on_write(xlarge):
    daemon, root, tree = xlarge
    core = "neuron0/neuron_core1/stats"
    with Session(daemon.address, visible_cores="1") as session:
        results = _run_mlp(session, 1, 3)
        tree.refresh()
        assert number(root, f"{core}/status/success/total") == 3
        assert number(root, f"{core}/other_info/inference_count/total") == 3
        assert number(root, f"{core}/other_info/model_load_count/total") == 1
        flops = sum(r.flops for r in results)
        assert flops >= 3 * 2 * 128 * 64 * 256  # the matmul alone: 2 FLOPs per MAC
        assert number(root, f"{core}/other_info/flop_count/total") == flops
        # modeled device time in microseconds (each execution's device latency, summed)
        device_us = sum(r.device_latency for r in results) * 1e6
        assert abs(number(root, f"{core}/other_info/nc_time_in_use/total") - device_us) <= 3
        assert number(root, "neuron0/neuron_core0/stats/status/success/total") == 0
        _run_mlp(session, 1, 2)
        tree.refresh()
        assert number(root, f"{core}/status/success/total") == 5
        assert number(root, f"{core}/status/success/present") == 2  # the last change
        session_id = session.session_id
    _wait_closed(daemon.address, session_id)
    tree.refresh()
    assert number(root, f"{core}/status/success/total") == 5  # kept after the session closed

    # Write to clear (reference §6.3: `echo 1 | sudo tee .../failure/total`).
    subprocess.run(["tee", str(root / "devices/virtual/neuron_device" / core / "status/success/total")],
                   input="1\n", text=True, check=True, capture_output=True)
    tree.refresh()
    assert number(root, f"{core}/status/success/total") == 0
    assert number(root, f"{core}/status/success/present") == 2  # only the written file is cleared
    # neuron-monitor's view (the daemon's cumulative counters) is untouched.
    assert Device(daemon.address).snapshot().cores[1].executions == 5
    with Session(daemon.address, visible_cores="1") as session:
        _run_mlp(session, 1, 1)
    tree.refresh()
    assert number(root, f"{core}/status/success/total") == 1


def test_memory_counters_total_present_peak(xlarge):
    daemon, root, tree = xlarge
    mem = "neuron0/neuron_core0/stats/memory_usage"
    tree.refresh()
    assert number(root, f"{mem}/device_mem/tensors/total") == 0
    with Session(daemon.address, visible_cores="0") as session:
        tensor = session.allocate((512, 512), "float32", core_id=0)  # 1 MiB
        host = session.allocate((256, 256), "float32", core_id=0, placement="host")  # 256 KiB
        tree.refresh()
        assert number(root, f"{mem}/device_mem/tensors/total") == MIB
        assert number(root, f"{mem}/device_mem/tensors/present") == MIB
        assert number(root, f"{mem}/device_mem/tensors/peak") == MIB
        snap = Device(daemon.address).snapshot()
        core_total = sum(m.used_bytes for m in snap.cores[0].memory)
        assert number(root, f"{mem}/device_mem/total") == core_total  # the sum of the categories
        assert number(root, "neuron0/stats/memory_usage/host_mem/tensors/total") == 256 * 1024
        host_before = number(root, f"{mem}/host_mem/total")
        host.free()
        tensor.free()
        tree.refresh()
        assert number(root, f"{mem}/device_mem/tensors/total") == 0
        assert number(root, f"{mem}/device_mem/tensors/present") == MIB  # the deallocation
        assert number(root, f"{mem}/device_mem/tensors/peak") == MIB
        assert number(root, f"{mem}/host_mem/total") == host_before - 256 * 1024
        # Clearing the peak: it restarts from the usage now.
        (root / "devices/virtual/neuron_device" / mem / "device_mem/tensors/peak").write_text("0\n")
        tree.refresh()
        assert number(root, f"{mem}/device_mem/tensors/peak") == 0
        small = session.allocate((128, 512), "float32", core_id=0)  # 256 KiB
        tree.refresh()
        assert number(root, f"{mem}/device_mem/tensors/peak") == 256 * 1024
        small.free()


def test_ecc_counters_follow_injected_faults(xlarge):
    daemon, root, tree = xlarge
    with Device(daemon.address) as device:
        device.inject_fault("SRAM_ECC_UNCORRECTED", device=0, count=3)
    tree.refresh()
    assert number(root, "neuron0/stats/hardware/sram_ecc_uncorrected/total") == 3
    assert number(root, "neuron0/stats/hardware/mem_ecc_uncorrected/total") == 0


def test_writing_reset_resets_the_device(xlarge):
    daemon, root, tree = xlarge
    base = root / "devices/virtual/neuron_device/neuron0"
    assert oct((base / "reset").stat().st_mode & 0o777) == oct(0o200)
    # reference §6.3: echo 1 | sudo tee /sys/devices/virtual/neuron_device/neuron0/reset
    subprocess.run(["tee", str(base / "reset")], input="1\n", text=True, check=True, capture_output=True)
    tree.refresh()
    assert Device(daemon.address).snapshot().devices[0].resets == 1
    tree.refresh()  # the count shows at the refresh after the reset
    for core in (0, 1):
        assert number(root, f"neuron0/neuron_core{core}/stats/other_info/reset_req_count/total") == 1
        assert number(root, f"neuron0/neuron_core{core}/stats/other_info/reset_fail_count/total") == 0
    tree.refresh()
    assert Device(daemon.address).snapshot().devices[0].resets == 1  # one write, one reset


def test_files_are_replaced_atomically_and_modes_match_the_driver(xlarge):
    daemon, root, tree = xlarge
    base = root / "devices/virtual/neuron_device/neuron0"
    assert oct((base / "core_count").stat().st_mode & 0o777) == oct(0o444)
    assert oct((base / "neuron_core0/stats/status/success/total").stat().st_mode & 0o777) == oct(0o644)
    with Session(daemon.address, visible_cores="0") as session:
        session.allocate((512, 512), "float32", core_id=0)
        tree.refresh()
        session_id = session.session_id
    _wait_closed(daemon.address, session_id)
    total = base / "neuron_core0/stats/memory_usage/device_mem/tensors/total"
    inode = total.stat().st_ino
    tree.refresh()  # the session's memory is gone: the file is replaced by a new one, not rewritten
    assert total.stat().st_ino != inode and total.read_text() == "0\n"
    assert not [p for p in base.rglob("*") if p.name.startswith(".")]  # no staging files in the tree


def test_a_root_write_to_a_read_only_file_is_undone(xlarge):
    _, root, tree = xlarge
    path = root / "devices/virtual/neuron_device/neuron0/info/architecture/device_name"
    if os.geteuid() == 0:
        path.write_text("Trainium9\n")  # root bypasses the mode on an ordinary filesystem
        tree.refresh()
    assert path.read_text() == "Inferentia2\n"


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_other_users_are_refused_like_by_the_driver():
    top = Path(tempfile.mkdtemp(prefix="nt-sysfs-"))
    try:
        top.chmod(0o755)
        with running_daemon("inf2.xlarge", sysfs_root=str(top / "s"), sysfs_period=NEVER):
            base = top / "s/devices/virtual/neuron_device/neuron0"
            for rel in ("info/serial_number", "neuron_core0/stats/status/success/total"):
                result = subprocess.run(
                    ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c",
                     f"cat {base / rel} >/dev/null && echo 1 > {base / rel}"], capture_output=True, text=True)
                assert result.returncode != 0 and "Permission denied" in result.stderr, result
    finally:
        shutil.rmtree(top, ignore_errors=True)


# -- bad roots, lifecycle ---------------------------------------------------------------------------

def test_bad_roots_are_refused_clearly(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(SysfsRootError, match="is a file, not a directory"):
        SysfsRoot(a_file).check()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(SysfsRootError, match=r"not empty \(it holds notes.txt\)"):
        SysfsRoot(busy).check()
    for kernel in ("/sys", "/sys/devices/virtual"):
        with pytest.raises(SysfsRootError, match="kernel's /sys"):
            SysfsRoot(kernel).check()
    link = tmp_path / "to-sys"
    link.symlink_to("/sys")
    with pytest.raises(SysfsRootError, match="kernel's /sys"):
        SysfsRoot(link).check()
    SysfsRoot(tmp_path / "new" / "dir").check()  # a new directory is fine
    assert (busy / "notes.txt").read_text() == "mine"


def test_tree_is_removed_on_shutdown_and_an_existing_empty_root_is_kept(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    with running_daemon("inf2.xlarge", sysfs_root=str(root), sysfs_period=0.05) as daemon:
        assert (root / "devices/virtual/neuron_device/neuron0/core_count").exists()
        refreshes = daemon.server.sysfs.tree.refreshes
        deadline = time.monotonic() + 5
        while daemon.server.sysfs.tree.refreshes < refreshes + 2:
            assert time.monotonic() < deadline, "the refresher does not run"
            time.sleep(0.02)
    assert root.is_dir() and os.listdir(root) == []
    new = tmp_path / "made"
    with running_daemon("inf2.xlarge", sysfs_root=str(new), sysfs_period=NEVER):
        assert new.is_dir()
    assert not new.exists()


def test_a_tree_left_by_a_dead_daemon_is_replaced_a_live_ones_is_refused(tmp_path):
    root = tmp_path / "left"
    (root / "devices").mkdir(parents=True)
    (root / ".neurond-sysfs").write_text("999999999\n")  # no such process
    with running_daemon("inf2.xlarge", sysfs_root=str(root), sysfs_period=NEVER):
        assert (root / "class/neuron_device/neuron0").exists()
    kept = tmp_path / "kept"
    (kept / "devices").mkdir(parents=True)
    (kept / ".neurond-sysfs").write_text(f"{os.getppid()}\n")  # a live process
    with pytest.raises(SysfsRootError, match=f"kept by another running neurond \\(pid {os.getppid()}\\)"):
        SysfsRoot(kept).check()


@pytest.mark.slow
def test_neurond_flag_end_to_end(tmp_path):
    address = f"unix://{tmp_path / 'd.sock'}"
    root = tmp_path / "sysfs"
    base = [sys.executable, "-m", "neurontools.daemon.server.cli", "--instance-type", "inf2.xlarge", "--address", address]
    (tmp_path / "f").write_text("x")
    refused = subprocess.run([*base, "--sysfs-root", str(tmp_path / "f")], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "is a file, not a directory" in refused.stderr
    refused = subprocess.run([*base, "--sysfs-root", "/sys"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "kernel's /sys" in refused.stderr
    proc = subprocess.Popen([*base, "--sysfs-root", str(root), "--sysfs-period", "0.1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (root / "module/neuron/version").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "slow"
            time.sleep(0.05)
        with Session(address, visible_cores="0") as session:
            session.allocate((512, 512), "float32", core_id=0)
            total = root / "devices/virtual/neuron_device/neuron0/neuron_core0/stats/memory_usage/device_mem/tensors/total"
            deadline = time.monotonic() + 5
            while total.read_text() != f"{MIB}\n":
                assert time.monotonic() < deadline, total.read_text()
                time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert not root.exists()
    finally:
        proc.kill()
