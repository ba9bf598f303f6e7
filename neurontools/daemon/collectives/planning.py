"""Collectives among the subgraphs of a model: the group rules, routes over the NeuronLink graph, the
algorithms with their modeled time and link traffic, and the ranks' joint schedule.

plan_model() runs when a model is loaded. It matches each rank's collective instructions with its
peers' (the k-th collective of a core over a group meets the k-th of every other rank of that group;
the k-th send from A to B meets the k-th receive at B from A), checks the Neuron runtime's group rules
(ref §1.2), picks the algorithm for the instance's link graph, and replays the ranks' schedules
together: a collective starts when its last rank is ready for it. collectives/rendezvous.py meets the
ranks at run time. docs/timing-model.md "Collectives" describes the algorithms and their figures.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass

from neurontools import dtypes
from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.isa import cost_model
from neurontools.daemon.device import topology as topo
from neurontools.daemon.isa.collective import CollectiveOp
from neurontools.daemon.isa.program import CompiledProgram, RunResult, Timeline

# A transfer of one step of an algorithm: (from core, to core, bytes). A step's transfers run at once.
Transfer = tuple[int, int, int]
Step = list[Transfer]
# A link traversed in one direction: (link id, 0 for device_a -> device_b, 1 for device_b -> device_a).
Hop = tuple[int, int]

_GROUP_KINDS = ("all_reduce", "all_gather", "reduce_scatter", "permute")


class CollectiveError(ValueError):
    """A model's collectives break a rule: the message names it and the cores or devices involved."""


@dataclass(frozen=True)
class Event:
    """One meeting of ranks: a group collective, or one send of a send_recv with its receive."""

    description: str                               # "all_reduce (instruction 4) over NeuronCores 0-23"
    members: tuple[tuple[int, CollectiveOp], ...]  # (core, its instruction): a group in rank order, or
                                                   # (sender, receiver)
    duration_ns: float
    link_bytes: dict[int, tuple[int, int]]         # link id -> bytes carried (a -> b, b -> a)
    algorithm: str = "direct"                      # "ring", "torus", "recursive doubling", "bruck", ...


@dataclass(frozen=True)
class ModelCollectives:
    """The collectives of a loaded model."""

    events: tuple[Event, ...]
    events_of: dict[tuple[int, int], tuple[int, ...]]  # (core, instruction index) -> its events
    programs: dict[int, CompiledProgram]                # every subgraph's program, timed among its peers
    device_time_ns: int                                 # the slowest rank's modeled time


def cores_text(cores) -> str:
    """ "0-23" for a run of consecutive ids, "0, 2, 5" otherwise."""
    cores = list(cores)
    if len(cores) > 2 and cores == list(range(cores[0], cores[0] + len(cores))):
        return f"{cores[0]}-{cores[-1]}"
    return ", ".join(str(c) for c in cores)


def _listing(items, last: str) -> str:
    """ "2, 8 or 32" """
    words = [str(i) for i in items]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {last} {words[-1]}"


# -- group rules (ref §1.2, "Collective rank constraints") -----------------------------------------------

def _allowed_sizes(machine: topo.MachineSpec) -> tuple[int, ...] | None:
    """Group sizes the runtime supports; None for inf2's 'any even number of ranks'."""
    if machine.platform.name == "trn1" and len(machine.devices) == 16:
        return (2, 8, 32)  # trn1.32xl: "sets of 2, 8 and 32 ranks"
    if machine.platform.name == "trn1" and len(machine.devices) == 1:
        return (2,)        # trn1.2xl: "only 2 ranks"
    return None


def _device_path(machine: topo.MachineSpec, devices: set[int]) -> list[int] | None:
    """The devices in consecutive order -- on a ring, possibly across its wrap-around (11, 0, 1) -- or
    None when they are not consecutive."""
    count = len(devices)
    starts = range(len(machine.devices)) if machine.shape == "ring" else [min(devices)]
    for start in starts:
        path = [(start + i) % len(machine.devices) for i in range(count)]
        if set(path) == devices:
            return path
    return None


def check_group(machine: topo.MachineSpec, group: tuple[int, ...]) -> None:
    """The Neuron runtime's rules for the ranks of a collective; raises CollectiveError naming the rule."""
    ranks = len(group)
    where = f"the group of NeuronCores {cores_text(group)} has {ranks} rank{'s' if ranks > 1 else ''}"
    allowed = _allowed_sizes(machine)
    if allowed is None and ranks % 2:
        raise CollectiveError(
            f"{where}; on {machine.platform.device_name} the Neuron runtime runs collectives over an even number "
            "of ranks on consecutive Neuron devices (group size rule)")
    if allowed is not None and ranks not in allowed:
        raise CollectiveError(f"{where}; {machine.instance_type} runs collectives over sets of "
                              f"{_listing(allowed, 'or')} ranks (group size rule)")
    devices = {machine.device_of_core(c) for c in group}
    if _device_path(machine, devices) is None:
        listed = sorted(devices)
        gap = next(d for d in range(listed[0], listed[-1]) if d not in devices)
        raise CollectiveError(
            f"the group of NeuronCores {cores_text(group)} spans Neuron devices {_listing(listed, 'and')}, which are "
            f"not consecutive (device {gap} has no rank); the ranks of a collective must occupy consecutive "
            "Neuron devices (group placement rule)")


# -- routes ----------------------------------------------------------------------------------------------

class Links:
    """The machine's NeuronLink graph: shortest routes between devices, as hops over directed links."""

    def __init__(self, machine: topo.MachineSpec) -> None:
        self.machine = machine
        self._ids = {pair: i for i, pair in enumerate(machine.links())}
        self._routes: dict[tuple[int, int], tuple[Hop, ...]] = {}

    def _hop(self, a: int, b: int) -> Hop:
        return (self._ids[(a, b)], 0) if a < b else (self._ids[(b, a)], 1)

    def route(self, a: int, b: int) -> tuple[Hop, ...]:
        """The hops from device a to device b: breadth first in neighbour-table order (deterministic)."""
        key = (a, b)
        if key not in self._routes:
            previous = {a: a}
            frontier = [a]
            while frontier and b not in previous:
                reached = []
                for device in frontier:
                    for neighbour in self.machine.devices[device].connected_to:
                        if neighbour not in previous:
                            previous[neighbour] = device
                            reached.append(neighbour)
                frontier = reached
            if b not in previous:
                raise CollectiveError(f"Neuron devices {a} and {b} have no NeuronLink path between them")
            path = [b]
            while path[-1] != a:
                path.append(previous[path[-1]])
            path.reverse()
            self._routes[key] = tuple(self._hop(x, y) for x, y in zip(path, path[1:]))
        return self._routes[key]

    def core_route(self, a: int, b: int) -> tuple[Hop, ...]:
        return self.route(self.machine.device_of_core(a), self.machine.device_of_core(b))


# -- algorithms ------------------------------------------------------------------------------------------
# Ring collectives move chunks between ring neighbours, every position at once (ref §4.6): a reduce-scatter
# takes R - 1 steps and leaves chunk j reduced at position j; an all-gather takes R - 1 steps; an
# all-reduce is both. Chunks are identified by the core they end at (reduce-scatter) or start from
# (all-gather), so a ring and its reverse can share them.

def _split(total: int, parts: int) -> list[int]:
    """`total` elements in `parts` near-equal pieces, larger first (numpy.array_split's sizes)."""
    base, extra = divmod(total, parts)
    return [base + (i < extra) for i in range(parts)]


def _ring_order(machine: topo.MachineSpec, group: tuple[int, ...]) -> list[int]:
    """The ranks along the ring the data takes: by device along the group's consecutive devices, then by
    core. A ring's wrap-around from the last device to the first takes the shortest route: a direct link
    on a full ring, back through the devices in between on a chain or a partial ring."""
    path = _device_path(machine, {machine.device_of_core(c) for c in group})  # check_group made sure
    position = {device: i for i, device in enumerate(path)}
    return sorted(group, key=lambda core: (position[machine.device_of_core(core)], core))


def _ring_steps(ring: list[int], chunk_bytes: dict[int, int], reduce: bool) -> list[Step]:
    r = len(ring)
    lag = 1 if reduce else 0  # reduce-scatter: chunk j is first sent by position j + 1
    return [[(ring[p], ring[(p + 1) % r], chunk_bytes[ring[(p - s - lag) % r]]) for p in range(r)]
            for s in range(r - 1)]


def _directions(links: Links, ring: list[int]) -> list[list[int]]:
    """The ring, and also its reverse when the reverse uses none of the ring's link directions (a ring
    closed by links: each carries half of every chunk, so both directions of every link work). On a chain
    or a partial ring the wrap-around already uses the reverse directions: one ring."""
    def used(order: list[int]) -> set[Hop]:
        return {hop for a, b in zip(order, order[1:] + order[:1]) for hop in links.core_route(a, b)}
    forward, backward = used(ring), used(ring[::-1])
    return [ring, ring[::-1]] if forward and not forward & backward else [ring]


def _ring(links: Links, ring: list[int], chunks: dict[int, int], itemsize: int, *, reduce_scatter: bool,
          all_gather: bool) -> list[Step]:
    """A ring phase over `chunks` (elements, by core), in one or both directions."""
    ways = _directions(links, ring)
    phases = []
    for way, order in enumerate(ways):
        share = {core: _split(n, len(ways))[way] * itemsize for core, n in chunks.items()}
        steps = _ring_steps(order, share, reduce=True) if reduce_scatter else []
        if all_gather:
            steps += _ring_steps(order, share, reduce=False)
        phases.append(steps)
    return _concurrently(phases)


def _concurrently(phases: list[list[Step]]) -> list[Step]:
    """Phases that run side by side, merged step by step."""
    return [[t for phase in phases if i < len(phase) for t in phase[i]] for i in range(max(map(len, phases)))]


def _torus_rows(machine: topo.MachineSpec, group: tuple[int, ...]) -> list[list[int]] | None:
    """On a square torus (trn1.32xlarge: device d at row d // 4, column d % 4) with every core in the
    group: the cores of each row, a ring closed by the row's wrap-around link."""
    side = math.isqrt(len(machine.devices))
    if machine.shape != "torus" or side * side != len(machine.devices) or len(group) != machine.core_count:
        return None
    return [[core for device in machine.devices[row * side:(row + 1) * side] for core in device.core_ids]
            for row in range(side)]


def algorithm(links: Links, kind: str, group: tuple[int, ...], src_elements: int, itemsize: int,
              shift: int = 0) -> list[Step]:
    """The steps of a group collective over `group` (rank order) of `src_elements` per rank.

    A 1-D ring on rings and chains. On the full trn1.32xlarge torus, rings along the rows and the columns
    (fewer steps than one ring of 32, the same bytes per rank): all-reduce = reduce-scatter along the rows,
    all-reduce of each row position's chunk along the columns, all-gather along the rows; all-gather =
    rows, then columns with the rows' blocks; reduce-scatter = columns with row-sized blocks, then rows.
    permute: one step, every rank sending to its target at once."""
    ranks = len(group)
    if kind == "permute":
        return [[(group[r], group[(r + shift) % ranks], src_elements * itemsize) for r in range(ranks)]]

    def phase(rings: list[tuple[list[int], dict[int, int]]], reduce_scatter: bool, all_gather: bool) -> list[Step]:
        return _concurrently([_ring(links, ring, chunks, itemsize, reduce_scatter=reduce_scatter,
                                   all_gather=all_gather) for ring, chunks in rings])

    rows = _torus_rows(links.machine, group)
    if rows is None:
        ring = _ring_order(links.machine, group)
        if kind == "all_reduce":
            chunks = dict(zip(ring, _split(src_elements, ranks)))
        else:  # every rank's block: all-gather sends its src, reduce-scatter leaves 1/R of it
            chunks = dict.fromkeys(ring, src_elements if kind == "all_gather" else src_elements // ranks)
        return phase([(ring, chunks)], kind != "all_gather", kind != "reduce_scatter")
    columns = [list(column) for column in zip(*rows)]
    width = len(rows[0])
    if kind == "all_reduce":
        row_chunks = _split(src_elements, width)  # row position p ends with chunk p of its row
        along_rows = [(row, dict(zip(row, row_chunks))) for row in rows]
        along_columns = [(column, dict(zip(column, _split(row_chunks[p], len(column)))))
                         for p, column in enumerate(columns)]
        return phase(along_rows, True, False) + phase(along_columns, True, True) + phase(along_rows, False, True)
    if kind == "all_gather":
        return (phase([(row, dict.fromkeys(row, src_elements)) for row in rows], False, True)
                + phase([(column, dict.fromkeys(column, src_elements * width)) for column in columns], False, True))
    block = src_elements // ranks  # reduce_scatter
    return (phase([(column, dict.fromkeys(column, block * width)) for column in columns], True, False)
            + phase([(row, dict.fromkeys(row, block)) for row in rows], True, False))


# Latency-optimal algorithms (small messages): few steps, each moving the whole message. A ring's 2(R - 1)
# steps each pay the hop latency, which dominates below a few hundred KiB; these take about log2(R) steps
# and more bytes. Collective libraries switch between the two by message size (NCCL, the Neuron
# collectives' "algorithm" selection); fastest() picks whichever the cost model times lower.

def _recursive_doubling(ring: list[int], nbytes: int) -> list[Step]:
    """All-reduce by recursive doubling over the ranks in ring order: in step k every rank exchanges its
    partial result with the rank 2^k positions away. With R not a power of two, R - 2^floor(log2 R)
    odd positions first hand their data to their even neighbour and get the result back at the end."""
    r = len(ring)
    p = 1 << (r.bit_length() - 1)
    extra = r - p
    steps: list[Step] = [[(ring[2 * j + 1], ring[2 * j], nbytes) for j in range(extra)]] if extra else []
    members = [ring[2 * j] for j in range(extra)] + ring[2 * extra:]
    distance = 1
    while distance < p:
        steps.append([(members[i], members[i ^ distance], nbytes) for i in range(p)])
        distance *= 2
    if extra:
        steps.append([(ring[2 * j], ring[2 * j + 1], nbytes) for j in range(extra)])
    return steps


def _bruck(ring: list[int], block_bytes: int) -> list[Step]:
    """All-gather by Bruck's algorithm: ceil(log2 R) steps; in each, every rank sends all the blocks it
    has (at most the ones still missing downstream) to the rank `have` positions before it."""
    r, have, steps = len(ring), 1, []
    while have < r:
        count = min(have, r - have)
        steps.append([(ring[i], ring[(i - have) % r], count * block_bytes) for i in range(r)])
        have += count
    return steps


def fastest(links: Links, kind: str, group: tuple[int, ...], src_elements: int, itemsize: int,
            shift: int = 0) -> tuple[str, float, dict[int, tuple[int, int]]]:
    """The algorithm a group collective runs with, its modeled time and link traffic: the bandwidth-optimal
    one (ring, or rows and columns on the trn1 torus), or for all-reduce and all-gather of small messages
    the latency-optimal one when the cost model times it lower."""
    bandwidth = "torus" if _torus_rows(links.machine, group) is not None else "ring"
    name = {"permute": "direct"}.get(kind, bandwidth)
    best = (name, *event_cost(links, algorithm(links, kind, group, src_elements, itemsize, shift)))
    if kind in ("all_reduce", "all_gather") and len(group) > 2:
        ring = _ring_order(links.machine, group)
        steps = (_recursive_doubling(ring, src_elements * itemsize) if kind == "all_reduce"
                 else _bruck(ring, src_elements * itemsize))
        duration, link_bytes = event_cost(links, steps)
        if duration < best[1]:
            best = ("recursive doubling" if kind == "all_reduce" else "bruck", duration, link_bytes)
    return best


def event_cost(links: Links, steps: list[Step]) -> tuple[float, dict[int, tuple[int, int]]]:
    """The modeled time of an algorithm's steps (cost_model.collective_step_ns each) and the bytes each
    link carries over all of them, by link id: (a -> b, b -> a)."""
    total_ns = 0.0
    carried: dict[int, list[int]] = {}
    for step in steps:
        load: collections.Counter[Hop] = collections.Counter()
        copies: collections.Counter[int] = collections.Counter()
        hops = 1
        for src, dst, nbytes in step:
            route = links.core_route(src, dst)
            if route:
                for hop in route:
                    load[hop] += nbytes
                hops = max(hops, len(route))
            else:  # same device: through its HBM
                copies[links.machine.device_of_core(src)] += nbytes
        total_ns += cost_model.collective_step_ns(max(load.values(), default=0), max(copies.values(), default=0),
                                                  hops)
        for (link, direction), nbytes in load.items():
            carried.setdefault(link, [0, 0])[direction] += nbytes
    return total_ns, {link: (pair[0], pair[1]) for link, pair in sorted(carried.items())}


# -- matching the ranks' instructions --------------------------------------------------------------------

def _described(view) -> str:
    return f"{dtypes.NAMES[view.dtype]}[{', '.join(str(d) for d in view.shape)}]"


def _agreement(op: CollectiveOp) -> list[tuple[str, object]]:
    """What the ranks of a group collective must agree on, by name."""
    fields: list[tuple[str, object]] = [("operation", op.kind), ("src", _described(op.src))]
    if op.kind in ("all_reduce", "reduce_scatter"):
        fields.append(("reduction", pb.AluOp.Name(op.op)))
    if op.kind in ("all_gather", "reduce_scatter"):
        fields.append(("axis", op.axis))
    if op.kind == "permute":
        fields.append(("shift", op.shift))
    return fields


class _Matcher:
    """Collects the ranks' instructions by the meeting they belong to, in program order."""

    def __init__(self, machine: topo.MachineSpec, model_cores: list[int]) -> None:
        self.machine = machine
        self.model_cores = model_cores
        self.meetings: dict[tuple, list[tuple[int, CollectiveOp]]] = {}
        self.issued: collections.Counter[tuple] = collections.Counter()  # (core, group or pair) -> count
        self._checked: set[tuple[int, ...]] = set()

    def _member(self, core: int, op: CollectiveOp, other: int, what: str) -> None:
        if other not in self.model_cores:
            raise CollectiveError(
                f"{op} on NeuronCore {core} {what} NeuronCore {other}, which runs no subgraph of this model; all "
                f"ranks of a collective must be subgraphs of one model (its cores: {cores_text(self.model_cores)})")

    def add(self, core: int, op: CollectiveOp) -> None:
        if op.kind in _GROUP_KINDS:
            group = op.group or tuple(self.model_cores)
            for other in group:
                self._member(core, op, other, "names")
            if core not in group:
                raise CollectiveError(f"{op} on NeuronCore {core} names the group of NeuronCores "
                                      f"{cores_text(group)}, which does not include NeuronCore {core}")
            if group not in self._checked:
                check_group(self.machine, group)
                self._checked.add(group)
            self._meet(("group", group), core, op)
            return
        if op.send_to is not None:
            self._member(core, op, op.send_to, "sends to")
            if op.send_to == core:
                raise CollectiveError(f"{op} on NeuronCore {core} sends to itself; copy with dma_copy instead")
            self._meet(("p2p", core, op.send_to), core, op)
        if op.recv_from is not None:
            self._member(core, op, op.recv_from, "receives from")
            if op.recv_from == core:
                raise CollectiveError(f"{op} on NeuronCore {core} receives from itself; copy with dma_copy instead")
            self._meet(("p2p", op.recv_from, core), core, op)

    def _meet(self, channel: tuple, core: int, op: CollectiveOp) -> None:
        n = self.issued[(core, channel)]
        self.issued[(core, channel)] += 1
        self.meetings.setdefault((channel, n), []).append((core, op))


def _group_event(links: Links, matcher: _Matcher, group: tuple[int, ...], n: int,
                 members: list[tuple[int, CollectiveOp]]) -> Event:
    by_core = dict(members)
    first_core, first = members[0]
    for core in group:
        if core not in by_core:
            count = matcher.issued[(core, ("group", group))]
            raise CollectiveError(
                f"{first} on NeuronCore {first_core} is collective {n + 1} over NeuronCores {cores_text(group)}, "
                f"but NeuronCore {core} issues {count} collective{'s' if count != 1 else ''} over that group: "
                "every rank of a group issues the same collectives in the same order (collective order rule)")
    ranked = tuple((core, by_core[core]) for core in group)
    expected = _agreement(ranked[0][1])
    for core, op in ranked[1:]:
        for (name, want), (_, have) in zip(expected, _agreement(op)):
            if have != want:
                raise CollectiveError(
                    f"collective {n + 1} over NeuronCores {cores_text(group)}: {name} is {have} on NeuronCore {core} "
                    f"({op}) but {want} on NeuronCore {ranked[0][0]} ({ranked[0][1]}); the ranks must agree on the "
                    "operation, shapes and dtypes (collective agreement rule)")
    op = ranked[0][1]
    ranks = len(group)
    if op.kind in ("all_gather", "reduce_scatter"):
        whole, block = (op.dst, op.src) if op.kind == "all_gather" else (op.src, op.dst)
        if whole.shape[op.axis] != ranks * block.shape[op.axis]:
            raise CollectiveError(
                f"{op} on NeuronCore {ranked[0][0]}: {_described(whole)} must hold {ranks} blocks of "
                f"{_described(block)} along axis {op.axis}, one per rank of NeuronCores {cores_text(group)} "
                "(collective shape rule)")
    if op.kind == "permute" and op.shift % ranks == 0:
        raise CollectiveError(f"{op}: shift {op.shift} is a multiple of the {ranks} ranks of NeuronCores "
                              f"{cores_text(group)}, so it moves nothing")
    name, duration, link_bytes = fastest(links, op.kind, group, op.src.size, op.src.np_dtype.itemsize, op.shift)
    return Event(f"{op} over NeuronCores {cores_text(group)}", ranked, duration, link_bytes, name)


def _pair_event(links: Links, sender: int, receiver: int, members: list[tuple[int, CollectiveOp]]) -> Event:
    send = next((op for core, op in members if core == sender and op.send_to == receiver), None)
    receive = next((op for core, op in members if core == receiver and op.recv_from == sender), None)
    if send is None or receive is None:
        core, op = members[0]
        missing = "receive from" if receive is None else "send to"
        raise CollectiveError(
            f"{op} on NeuronCore {core} has no matching send_recv on NeuronCore {receiver if receive is None else sender} "
            f"(a {missing} NeuronCore {core}): the k-th send from one core to another meets the k-th receive "
            "there (send_recv pairing rule)")
    if (send.src.dtype, send.src.shape) != (receive.dst.dtype, receive.dst.shape):
        raise CollectiveError(f"{send} on NeuronCore {sender} sends {_described(send.src)} but {receive} on "
                              f"NeuronCore {receiver} receives {_described(receive.dst)}; they must match "
                              "(send_recv pairing rule)")
    duration, link_bytes = event_cost(links, [[(sender, receiver, send.src.size * send.src.np_dtype.itemsize)]])
    return Event(f"send_recv from NeuronCore {sender} ({send}) to NeuronCore {receiver} ({receive})",
                 ((sender, send), (receiver, receive)), duration, link_bytes)


# -- the joint schedule ----------------------------------------------------------------------------------

def _schedule(programs: dict[int, CompiledProgram], events: tuple[Event, ...],
              events_of: dict[tuple[int, int], tuple[int, ...]]) -> dict[int, tuple[RunResult, list[tuple[float, float]]]]:
    """Every rank's estimate with its collectives: each event starts when the last of its ranks is ready
    and lasts its duration; an instruction finishes with its last event. Raises CollectiveError when the
    ranks' orders leave some of them waiting for each other for ever."""
    timelines: dict[int, Timeline] = {core: program.timeline() for core, program in programs.items()}
    waiting: dict[int, tuple[CollectiveOp, float]] = {}  # core -> (the collective it is at, ready time)
    fired: dict[int, tuple[float, float]] = {}            # event -> (start, finish)
    estimates: dict[int, RunResult] = {}
    answers: dict[int, list[tuple[float, float]]] = {core: [] for core in timelines}  # each rank's collectives

    def advance(core: int, answer: tuple[float, float] | None) -> None:
        if answer is not None:
            answers[core].append(answer)
        try:
            waiting[core] = timelines[core].send(answer)
        except StopIteration as done:
            waiting.pop(core, None)
            estimates[core] = done.value

    for core in timelines:
        advance(core, None)
    while waiting:
        progressed = False
        for core, (op, _) in list(waiting.items()):
            mine = events_of[(core, op.index)]
            for e in mine:
                members = events[e].members
                if e not in fired and all(c in waiting and waiting[c][0] is o for c, o in members):
                    start = max(waiting[c][1] for c, _ in members)
                    fired[e] = (start, start + events[e].duration_ns)
            if all(e in fired for e in mine):
                advance(core, (min(fired[e][0] for e in mine), max(fired[e][1] for e in mine)))
                progressed = True
        if not progressed:
            raise CollectiveError(_deadlock(waiting, events, events_of, fired))
    return {core: (estimate, answers[core]) for core, estimate in estimates.items()}


def _deadlock(waiting: dict[int, tuple[CollectiveOp, float]], events: tuple[Event, ...],
              events_of: dict[tuple[int, int], tuple[int, ...]], fired: dict[int, tuple[float, float]]) -> str:
    stuck = []
    for core, (op, _) in sorted(waiting.items()):
        absent = sorted({c for e in events_of[(core, op.index)] if e not in fired for c, o in events[e].members
                         if not (c in waiting and waiting[c][0] is o)})
        stuck.append(f"NeuronCore {core} waits at {op} for NeuronCore {cores_text(absent)}")
    return ("the model's collectives cannot complete: " + "; ".join(stuck) + ". Each rank must reach its "
            "collectives in an order its peers can meet (collective order rule)")


def plan_model(machine: topo.MachineSpec, subgraphs: list[tuple[int, CompiledProgram]]) -> ModelCollectives | None:
    """The collectives of a model of (core, program) subgraphs, or None when it has none."""
    if not any(program.collectives for _, program in subgraphs):
        return None
    model_cores = sorted(core for core, _ in subgraphs)
    links = Links(machine)
    matcher = _Matcher(machine, model_cores)
    for core, program in subgraphs:
        for op in program.collectives:
            matcher.add(core, op)
    events: list[Event] = []
    events_of: dict[tuple[int, int], list[int]] = collections.defaultdict(list)
    for (channel, n), members in matcher.meetings.items():
        if channel[0] == "group":
            event = _group_event(links, matcher, channel[1], n, members)
        else:
            event = _pair_event(links, channel[1], channel[2], members)
        for core, op in event.members:
            events_of[(core, op.index)].append(len(events))
        events.append(event)
    frozen = {key: tuple(value) for key, value in events_of.items()}
    ranks = {core: program for core, program in subgraphs if program.collectives}
    estimates = _schedule(ranks, tuple(events), frozen)
    programs = {core: program.with_estimate(*estimates[core]) if core in estimates else program
                for core, program in subgraphs}
    return ModelCollectives(tuple(events), frozen, programs,
                            max(program.estimate.device_time_ns for program in programs.values()))

