"""Alerts as they change: polls Prometheus's /api/v1/alerts and reports pending, firing, resolved."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from neurontools.lab.prometheus_server import PrometheusServer

POLL_SECONDS = 0.5


@dataclass
class AlertHistory:
    """What one alert (its name and labels) did, in seconds from the start."""

    name: str
    labels: dict[str, str]
    pending_at: float | None = None
    firing_at: float | None = None
    resolved_at: float | None = None


@dataclass
class AlertWatch:
    prometheus: PrometheusServer
    started: float  # time.monotonic() of the scenario's t=0 (moved on while the scenario's clock waits)
    report: Callable[[str], None]
    history: list[AlertHistory] = field(default_factory=list)
    _current: dict[tuple, AlertHistory] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> "AlertWatch":
        self._thread = threading.Thread(target=self._run, name="alert-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def active(self) -> int:
        return len(self._current)

    def _run(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            try:
                alerts = self.prometheus.alerts()
            except OSError:
                continue
            self.update(alerts, time.monotonic() - self.started)

    def update(self, alerts: list[dict], now: float) -> None:
        seen = set()
        for alert in alerts:
            labels = dict(alert["labels"])
            name = labels.pop("alertname")
            key = (name, tuple(sorted(labels.items())))
            seen.add(key)
            entry = self._current.get(key)
            if entry is None:
                entry = self._current[key] = AlertHistory(name, labels)
                self.history.append(entry)
            if alert["state"] == "pending" and entry.pending_at is None:
                entry.pending_at = now
                self._say(now, "pending", entry)
            elif alert["state"] == "firing" and entry.firing_at is None:
                entry.firing_at = now
                self._say(now, "firing", entry)
        for key in [k for k in self._current if k not in seen]:
            entry = self._current.pop(key)
            entry.resolved_at = now
            self._say(now, "resolved", entry)

    def _say(self, now: float, state: str, entry: AlertHistory) -> None:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(entry.labels.items())
                          if k not in ("severity", "instance_name", "availability_zone", "region", "subnet_id",
                                       "instance_type"))
        self.report(f"{time.strftime('%H:%M:%S')} t={now:6.1f}s  {state:<8} {entry.name}{{{labels}}}")
