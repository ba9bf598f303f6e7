"""What `neuron-top --fleet` shows: every host of a fleet, from its exporter's /metrics.

The hosts come from a Prometheus file_sd discovery file (neuron-fleet writes one; `neuron-fleet
targets` prints it), or from a running neuron-fleet's state directory. Each host's exporter is scraped
directly, as Prometheus would, and only the series our exporter emits are read (docs/exporters.md):
cores and their utilization, HBM used and capacity, and the daemon's cumulative execution and error
counters (`neurond_execution_*_total`, which keep every execution), from which rates are taken over
the host's own history. A host whose exporter cannot be scraped, or whose monitor is down, is shown
down; the others keep updating.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from neurontools.fleet.discovery import NEUROND_ADDRESS_LABEL

STATE_FILE = "state.json"
SCRAPE_TIMEOUT_S = 2.0
ERROR_WINDOW_S = 60.0
HISTORY = 60  # samples kept per host for its sparkline


class FleetSourceError(Exception):
    """A discovery file or state directory that cannot be used; the message says what to give instead."""


@dataclass(frozen=True)
class FleetTarget:
    host: str
    instance_type: str
    availability_zone: str
    url: str                 # the exporter's /metrics
    neurond_address: str     # "" when the discovery file does not say (a Prometheus of one's own)


@dataclass(frozen=True)
class HostSample:
    up: bool
    cores: int = 0
    busy_cores: int = 0
    utilization: float = 0.0     # mean over the host's cores
    hbm_used: int = 0
    hbm_total: int = 0
    executions: float = 0.0      # cumulative, every status
    errors: float = 0.0          # cumulative
    problem: str = ""            # why it is down


@dataclass
class FleetRow:
    target: FleetTarget
    sample: HostSample
    executions_per_s: float | None
    errors_last_minute: float | None
    utilization_history: list[float] = field(default_factory=list)


def load_targets(path: Path) -> list[FleetTarget]:
    """The hosts of a discovery file, or of the discovery file a neuron-fleet state directory names."""
    path = Path(path)
    if path.is_dir():
        try:
            state = json.loads((path / STATE_FILE).read_text())
        except OSError:
            raise FleetSourceError(f"{path} holds no neuron-fleet state ({STATE_FILE}): is `neuron-fleet up` running? "
                                   "Or give the discovery file (`neuron-fleet targets > targets.json`)") from None
        except ValueError:
            raise FleetSourceError(f"{path / STATE_FILE} is not a neuron-fleet state file") from None
        path = Path(state["targets_file"])
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        raise FleetSourceError(f"cannot read the discovery file {path}: {exc.strerror}") from None
    except ValueError:
        raise FleetSourceError(f"{path} is not a Prometheus file_sd discovery file (it is not JSON)") from None
    if not isinstance(document, list) or not all(isinstance(g, dict) and isinstance(g.get("targets"), list)
                                                 for g in document):
        raise FleetSourceError(f"{path} is not a Prometheus file_sd discovery file: it must be a list of "
                               '{"targets": [...], "labels": {...}} groups')
    targets = []
    for group in document:
        labels = group.get("labels") or {}
        for address in group["targets"]:
            targets.append(FleetTarget(host=labels.get("host") or address,
                                       instance_type=labels.get("instance_type", "?"),
                                       availability_zone=labels.get("availability_zone", "?"),
                                       url=f"http://{address}/metrics",
                                       neurond_address=labels.get(NEUROND_ADDRESS_LABEL, "")))
    if not targets:
        raise FleetSourceError(f"{path} lists no targets: the fleet is empty")
    return targets


def parse_host(text: str) -> HostSample:
    """One host's sample from its exporter's exposition."""
    cores: set[str] = set()
    utilization: dict[str, float] = {}
    hbm_used = hbm_total = 0
    executions = errors = 0.0
    monitor_up = False
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if name == "neuroncore_device_info":
                cores.add(labels["neuroncore"])
            elif name == "neuroncore_utilization_ratio":
                core = labels["neuroncore"]  # one series per runtime using the core: they add up
                utilization[core] = utilization.get(core, 0.0) + value
            elif name == "neuron_runtime_memory_used_bytes" and labels.get("memory_location") == "neuron_device":
                hbm_used += int(value)
            elif name == "neuron_device_memory_size_bytes":
                hbm_total += int(value)
            elif name == "neurond_execution_status_total":
                executions += value
            elif name == "neurond_execution_errors_total":
                errors += value
            elif name == "neuron_monitor_up":
                monitor_up = value == 1
    if not monitor_up:
        return HostSample(False, problem="neuron-monitor is not reporting (neuron_monitor_up 0)")
    count = len(cores)
    busy = sum(1 for value in utilization.values() if value > 0.01)
    mean = sum(utilization.values()) / count if count else 0.0
    return HostSample(True, count, busy, min(1.0, mean), hbm_used, hbm_total, executions, errors)


def scrape(target: FleetTarget) -> HostSample:
    try:
        with urllib.request.urlopen(target.url, timeout=SCRAPE_TIMEOUT_S) as response:
            return parse_host(response.read().decode())
    except (OSError, ValueError) as exc:
        return HostSample(False, problem=f"cannot scrape {target.url}: {getattr(exc, 'reason', exc)}")


class FleetSource:
    """Scrapes every host each `read()` and keeps each host's history for rates and sparklines."""

    def __init__(self, targets: list[FleetTarget], scraper=scrape, clock=time.monotonic) -> None:
        self.targets = targets
        self._scrape = scraper
        self._clock = clock
        self._history: dict[str, deque[tuple[float, HostSample]]] = {t.host: deque(maxlen=HISTORY) for t in targets}
        self._pool = ThreadPoolExecutor(max_workers=min(16, len(targets)))

    def read(self) -> list[FleetRow]:
        now = self._clock()
        samples = list(self._pool.map(self._scrape, self.targets))
        return [self._row(target, sample, now) for target, sample in zip(self.targets, samples)]

    def _row(self, target: FleetTarget, sample: HostSample, now: float) -> FleetRow:
        history = self._history[target.host]
        if sample.up:
            history.append((now, sample))
        rate = errors = None
        live = [(t, s) for t, s in history if s.up]
        if sample.up and len(live) >= 2:
            (t0, s0), (t1, s1) = live[-2], live[-1]
            if t1 > t0 and s1.executions >= s0.executions:  # a restarted daemon starts its counters again
                rate = (s1.executions - s0.executions) / (t1 - t0)
            since = [s for t, s in live if t >= now - ERROR_WINDOW_S]
            if since and since[-1].errors >= since[0].errors:
                errors = since[-1].errors - since[0].errors
        return FleetRow(target, sample, rate, errors, [s.utilization for _, s in live])

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
