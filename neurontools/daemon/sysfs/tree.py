"""`neurond --sysfs-root DIR`: the Neuron driver's sysfs tree, kept as files under DIR.

Layout (as under /sys on a real inf2 host, reference neuron-tools.md §6):
  DIR/devices/virtual/neuron_device/neuronN/...   the device and per-core files
  DIR/class/neuron_device/neuronN                 -> ../../devices/virtual/neuron_device/neuronN
  DIR/module/neuron/version                       the driver version

Values come from sysfs_values.NodeReader and are rewritten every period by a worker thread that
re-arms after it finishes (DESIGN principle 9). Each file is replaced atomically (written in a
staging directory, then renamed over the old one), so a reader sees the old or the new value,
never half of one.

Write to clear, as on the driver: writing anything to a counter's `total`, `present` or `peak`
clears that file. The daemon's own counters are untouched (principle 2) - the tree keeps a
per-file baseline - so neuron-monitor and neuron-top keep their cumulative view. Read-only files
are mode 0444: other users get "Permission denied" as from the driver; root bypasses file modes on
an ordinary filesystem, so a root write is undone at the next refresh and logged.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.runtime.sessions import RuntimeState
from neurontools.daemon.runtime.snapshot import SnapshotBuilder
from neurontools.daemon.sysfs.root import STAGING, SysfsRoot
from neurontools.daemon.sysfs.values import (DRIVER_VERSION, POWER_WINDOW_SECONDS, Counter, NodeReader,
                                             PowerModel)

log = logging.getLogger("neurond.sysfs")

DEFAULT_PERIOD_SECONDS = 1.0
DEVICES_DIR = "devices/virtual/neuron_device"
CLASS_DIR = "class/neuron_device"
READ_ONLY_MODE = 0o444
COUNTER_MODE = 0o644  # root may write (to clear), everyone may read
WRITE_ONLY_MODE = 0o200  # neuronN/reset: a command, not a value


@dataclass
class _CounterView:
    """What the tree shows of one counter: the daemon's value less what writes cleared."""

    last_total: int | None = None  # the daemon's value at the previous refresh
    present: int = 0               # the last change seen ("the last changed metric value")
    total_base: int = 0            # the daemon's total when `total` was last cleared
    peak_cleared: bool = False
    peak_at_clear: int = 0         # the daemon's all-time peak when `peak` was cleared
    peak_since_clear: int = 0      # highest usage seen at refreshes since then

    def clear(self, name: str, counter: Counter) -> None:
        if name == "total":
            self.total_base = counter.total
        elif name == "present":
            self.present = 0
        else:
            self.peak_cleared = True
            self.peak_at_clear = counter.peak or 0
            self.peak_since_clear = counter.total

    def update(self, counter: Counter) -> dict[str, int]:
        if self.last_total is not None and counter.total != self.last_total:
            self.present = abs(counter.total - self.last_total)
        self.last_total = counter.total
        shown = {"total": max(0, counter.total - self.total_base), "present": self.present}
        if counter.is_memory:
            if not self.peak_cleared:
                shown["peak"] = counter.peak
            else:
                self.peak_since_clear = max(self.peak_since_clear, counter.total)
                # A new all-time peak after the clear is a peak since the clear, exactly.
                newer = counter.peak if counter.peak > self.peak_at_clear else 0
                shown["peak"] = max(self.peak_since_clear, newer)
        return shown


class SysfsTree:
    """Writes NodeValues as files under a claimed SysfsRoot; refresh() once per period."""

    def __init__(self, root: SysfsRoot, reader: NodeReader, clock=time.time,
                 reset_device: Callable[[int], None] | None = None) -> None:
        self.root = root.path
        self._root = str(root.path)  # string paths: pathlib was most of a refresh's cost
        self.reader = reader
        self.reset_device = reset_device  # what a write to neuronN/reset does
        self.clock = clock
        self._names = itertools.count()
        self._written: dict[str, tuple[str, tuple[int, int, int]]] = {}  # rel path -> (text, stat key)
        self._views: dict[str, _CounterView] = {}
        self._dirs: set[str] = set()
        self._device_names: list[str] = []
        self.refreshes = 0

    def refresh(self) -> None:
        values = self.reader.read(self.clock())
        for rel, text in values.texts.items():
            self._publish(f"{DEVICES_DIR}/{rel}", text, READ_ONLY_MODE)
        for rel, counter in values.counters.items():
            view = self._views.get(rel)
            if view is None:
                view = self._views[rel] = _CounterView()
            base = f"{DEVICES_DIR}/{rel}"
            names = ("total", "present", "peak") if counter.is_memory else ("total", "present")
            touched = {name: self._written_by_someone(f"{base}/{name}") for name in names}
            for name in names:
                if touched[name]:
                    view.clear(name, counter)
                    log.info("sysfs: %s/%s cleared by a write", rel, name)
            for name, number in view.update(counter).items():
                self._publish(f"{base}/{name}", str(number), COUNTER_MODE, touched[name])
        devices = sorted({rel.split("/", 1)[0] for rel in values.texts})
        if devices != self._device_names:
            self._links(devices)
        if self.reset_device is not None:
            for device in devices:
                rel = f"{DEVICES_DIR}/{device}/reset"
                touched = self._written_by_someone(rel)
                if touched:  # `echo 1 | sudo tee .../neuronN/reset` (reference §6.3)
                    log.warning("sysfs: %s written: resetting the device", rel)
                    self.reset_device(int(device.removeprefix("neuron")))
                self._publish(rel, "", WRITE_ONLY_MODE, touched)
        self._publish("module/neuron/version", DRIVER_VERSION, READ_ONLY_MODE)
        self.refreshes += 1

    def forget_layout(self) -> None:
        """Recreate directories and links at the next refresh (after someone removed some)."""
        self._dirs.clear()
        self._device_names = []

    def _links(self, devices: list[str]) -> None:
        for device in devices:
            self._symlink(f"{CLASS_DIR}/{device}", f"../../{DEVICES_DIR}/{device}")
            self._symlink(f"{DEVICES_DIR}/{device}/subsystem", f"../../../../{CLASS_DIR}")
        self._device_names = devices

    def _symlink(self, rel: str, target: str) -> None:
        path = self.root / rel
        self._ensure_dir(str(path.parent))
        if not path.is_symlink():
            os.symlink(target, path)

    def _ensure_dir(self, directory: str) -> None:
        if directory not in self._dirs:
            os.makedirs(directory, mode=0o755, exist_ok=True)
            self._dirs.add(directory)

    def _written_by_someone(self, rel: str) -> bool:
        """True when the file changed since we wrote it (a write, or a removal)."""
        record = self._written.get(rel)
        if record is None:
            return False
        try:
            st = os.stat(f"{self._root}/{rel}")
        except FileNotFoundError:
            return True
        return (st.st_ino, st.st_mtime_ns, st.st_size) != record[1]

    def _publish(self, rel: str, text: str, mode: int, touched: bool | None = None) -> None:
        """Write `text` unless the file already holds it; `touched`: whether someone wrote it since
        we did (checked here when the caller has not)."""
        record = self._written.get(rel)
        if record is not None and record[0] == text:
            if not (self._written_by_someone(rel) if touched is None else touched):
                return
            if mode == READ_ONLY_MODE:
                log.warning("sysfs: %s is read-only (as on the driver); restored the value a root write "
                            "replaced", rel)
        path = f"{self._root}/{rel}"
        self._ensure_dir(os.path.dirname(path))
        staged = f"{self._root}/{STAGING}/{next(self._names)}"
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            os.write(fd, f"{text}\n".encode())
            os.fchmod(fd, mode)  # the umask may have taken bits away
        finally:
            os.close(fd)
        os.replace(staged, path)
        st = os.stat(path)
        self._written[rel] = (text, (st.st_ino, st.st_mtime_ns, st.st_size))


class SysfsPublisher:
    """Owns the tree for a running daemon: claim the root, refresh periodically, remove on stop."""

    def __init__(self, path: str | os.PathLike, state: RuntimeState,
                 period_seconds: float = DEFAULT_PERIOD_SECONDS,
                 power_window_seconds: int = POWER_WINDOW_SECONDS) -> None:
        if not period_seconds > 0:
            raise ValueError(f"--sysfs-period must be above 0 seconds (got {period_seconds})")
        self.root = SysfsRoot(path)
        self.root.check()  # refuse a bad directory before the daemon starts serving
        self.period = period_seconds
        power = PowerModel(len(state.machine.devices), power_window_seconds)
        # A builder of its own: a SnapshotBuilder's caches belong to one thread (the servicers' is the
        # event loop's; this one is the refresher's).
        self.tree = SysfsTree(self.root, NodeReader(state, SnapshotBuilder(state), power),
                              reset_device=self._reset)
        self.state = state
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _reset(self, device_index: int) -> None:
        # As `neuron-fault inject DEVICE_RESET` (thread-safe): counts a reset, seen in reset_req_count.
        self.state.faults.inject(pb.Fault(kind=pb.DEVICE_RESET, device_index=device_index))

    def start(self) -> None:
        self.root.claim()
        self.tree.refresh()  # complete before the daemon reports SERVING
        self._thread = threading.Thread(target=self._run, name="neurond-sysfs", daemon=True)
        self._thread.start()
        log.info("sysfs tree at %s (refreshed every %gs)", self.root.path, self.period)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.tree.refresh()
            except OSError as exc:  # e.g. someone removed a directory: rebuild it next time
                self.tree.forget_layout()
                log.warning("sysfs: refresh failed (%s); retrying in %gs", exc, self.period)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.root.release()
