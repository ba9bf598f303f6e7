"""The Neuron Apps tab bar: 'all' plus one tab per application of the current report.

A tab is identified by its key (pid and tag), not its position, so the selection follows an
application when others start or stop; when the selected application goes away the bar falls back
to 'all'.
"""

from __future__ import annotations

from dataclasses import dataclass

from neurontools.monitor.report import Report, RuntimeData

ALL = "all"


@dataclass(frozen=True)
class AppTab:
    number: int  # 1-based position on the bar: what the 1-9 keys select
    label: str  # "all", or NEURON_PROCESS_TAG (the pid when untagged)
    key: str


def runtime_key(runtime: RuntimeData) -> str:
    return f"{runtime.pid}:{runtime.neuron_runtime_tag}"


def tabs_of(report: Report) -> tuple[AppTab, ...]:
    """The bar in the report's order of applications (neuron-monitor's order)."""
    tabs = [AppTab(1, ALL, ALL)]
    seen: set[str] = {ALL}
    for runtime in report.neuron_runtime_data:
        key = runtime_key(runtime)
        if key not in seen:  # one tab per application even if a stream repeats one
            seen.add(key)
            tabs.append(AppTab(len(tabs) + 1, runtime.neuron_runtime_tag or str(runtime.pid), key))
    return tuple(tabs)


def runtimes_of(report: Report, tab_key: str) -> list[RuntimeData]:
    """The applications whose data the tab shows: all of them, or the one it names."""
    if tab_key == ALL:
        return list(report.neuron_runtime_data)
    return [r for r in report.neuron_runtime_data if runtime_key(r) == tab_key]


def resolve(tabs: tuple[AppTab, ...], tab_key: str) -> AppTab:
    """The tab with this key, or 'all' when its application has gone."""
    return next((tab for tab in tabs if tab.key == tab_key), tabs[0])


def step(tabs: tuple[AppTab, ...], tab_key: str, delta: int) -> AppTab:
    """The previous (-1) or next (+1) tab, wrapping around like the real tool's a/d keys."""
    index = resolve(tabs, tab_key).number - 1
    return tabs[(index + delta) % len(tabs)]
