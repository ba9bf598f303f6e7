"""Whether a played scenario's alerts did what its [[expect]] entries declare (neuron-lab, neuron-fleet)."""

from __future__ import annotations

from neurontools.lab.alert_watch import AlertHistory
from neurontools.scenarios.scenario_file import Scenario


def all_resolved(scenario: Scenario, history: list[AlertHistory]) -> bool:
    names = {e.alert for e in scenario.expect}
    return all(any(h.name == name and h.resolved_at is not None for h in history) for name in names)


def check_expectations(scenario: Scenario, history: list[AlertHistory], slack: float = 0.0) -> list[str]:
    """Exactly the declared alerts fire, each by its fires_by, and all of them resolve by resolves_by
    (`slack` seconds later at most: the pipeline's own delay)."""
    problems = []
    expected = {e.alert: e for e in scenario.expect}
    for name, entry in expected.items():
        fired = [h for h in history if h.name == name and h.firing_at is not None]
        if not fired:
            problems.append(f"{name} never fired (expected by t={entry.fires_by:g}s)")
            continue
        first = min(h.firing_at for h in fired)
        if first > entry.fires_by + slack:
            problems.append(f"{name} fired at t={first:.1f}s, after fires_by={entry.fires_by:g}s")
        late = [h for h in history if h.name == name and (h.resolved_at is None or h.resolved_at > entry.resolves_by + slack)]
        if late:
            when = "never" if late[0].resolved_at is None else f"at t={late[0].resolved_at:.1f}s"
            problems.append(f"{name}{late[0].labels} resolved {when}, expected by t={entry.resolves_by:g}s")
    for h in history:
        if h.name not in expected and h.firing_at is not None:
            problems.append(f"{h.name}{h.labels} fired at t={h.firing_at:.1f}s but the scenario does not expect it")
    return problems
