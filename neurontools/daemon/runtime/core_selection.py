"""Which NeuronCores a new runtime session gets: NEURON_RT_VISIBLE_CORES / NEURON_RT_NUM_CORES rules.

Like the Neuron runtime: visible cores take precedence over a core count; the cores of a process
must be contiguous; by default a process reserves every core; a core belongs to one process.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from neurontools.daemon.errors import InvalidArgument, ResourceExhausted


class CoreSelectionError(InvalidArgument):
    """Bad request (malformed or non-contiguous list, core out of range)."""


class CoresBusy(ResourceExhausted):
    """The request is well formed but the cores are owned by other processes."""


_PART = re.compile(r"([0-9]{1,9})(?:-([0-9]{1,9}))?")


def parse_visible_cores(text: str, core_count: int) -> list[int]:
    """Parse "3", "0-3" or "2,3" (ranges and lists combine: "0-1,2") into sorted core ids."""
    bounds: list[tuple[int, int]] = []
    for part in text.replace(" ", "").split(","):
        match = _PART.fullmatch(part)
        if match is None:
            raise CoreSelectionError(
                f"NEURON_RT_VISIBLE_CORES={text[:64]!r} is malformed at {part[:16]!r}; use a core, a range "
                "or a list such as 3, 0-3 or 2,3")
        lo = int(match.group(1))
        hi = int(match.group(2)) if match.group(2) else lo
        if hi < lo:
            raise CoreSelectionError(f"NEURON_RT_VISIBLE_CORES={text[:64]!r}: range {part} runs backwards")
        if hi >= core_count:  # checked before expanding: a range may be absurdly long
            raise CoreSelectionError(
                f"NEURON_RT_VISIBLE_CORES={text[:64]!r} names NeuronCore {hi} but this machine has "
                f"cores 0-{core_count - 1}")
        bounds.append((lo, hi))
    cores = sorted({core for lo, hi in bounds for core in range(lo, hi + 1)})
    if cores != list(range(cores[0], cores[-1] + 1)):
        raise CoreSelectionError(
            f"NEURON_RT_VISIBLE_CORES={text[:64]!r}: Neuron cores are not contiguous; a process uses a "
            "contiguous range of cores, such as 2-3")
    return cores


def select_cores(visible_cores: str, num_cores: int, core_count: int,
                 owners: Mapping[int, str]) -> list[int]:
    """Cores for a new session. `owners` maps taken core ids to a description of the owner
    ("pid 1234"). Raises CoreSelectionError for a bad request and CoresBusy when taken."""
    if visible_cores.strip():
        wanted = parse_visible_cores(visible_cores, core_count)
    elif num_cores:
        if num_cores > core_count:
            raise CoreSelectionError(
                f"NEURON_RT_NUM_CORES={num_cores} but this machine has {core_count} NeuronCores")
        return _first_free_run(num_cores, core_count, owners)
    else:
        wanted = list(range(core_count))
    taken = [core for core in wanted if core in owners]
    if taken:
        core = taken[0]
        raise CoresBusy(
            f"NeuronCore {core} is already in use by {owners[core]}; a core belongs to one process "
            "at a time: choose free cores with NEURON_RT_VISIBLE_CORES or NEURON_RT_NUM_CORES, or "
            "stop that process")
    return wanted


def _first_free_run(count: int, core_count: int, owners: Mapping[int, str]) -> list[int]:
    run_start = 0
    for core in range(core_count):
        if core in owners:
            run_start = core + 1
        elif core - run_start + 1 == count:
            return list(range(run_start, core + 1))
    free = core_count - len(owners)
    raise CoresBusy(
        f"NEURON_RT_NUM_CORES={count}: no {count} contiguous free NeuronCores ({free} of "
        f"{core_count} free); stop other Neuron processes or ask for fewer cores")
