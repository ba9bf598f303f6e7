"""Building a Snapshot: every cumulative counter of the machine at one monotonic instant.

Building protobuf messages in Python is most of a snapshot's cost, and most of a snapshot does not
change from one call to the next: memory changes on allocation and free, a session's statistics
on its executions, a core's engine counters when an execution ends. So each part is kept as a
message built from the state it shows, with a key that changes whenever that state does; a
snapshot copies the kept messages (in C) and builds only the parts whose key changed, and the
few fields that change all the time (a running core's occupied time) are set on the copy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import TypeVar

from neurontools import __version__
from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.device.memory_ledger import MemoryLedger
from neurontools.daemon.runtime.sessions import RuntimeState, Session
from neurontools.daemon.device.telemetry import CoreTelemetry, ExecutionTelemetry

Message = TypeVar("Message")


class _MessageCache:
    """Messages by identity (a session id, a core id...), each with the key it was built for."""

    def __init__(self) -> None:
        self._entries: dict[Hashable, tuple[Hashable, object]] = {}

    def get(self, identity: Hashable, key: Hashable, build: Callable[[], Message]) -> Message:
        """The message kept for identity, built anew when its key differs from the one given.
        Read the key before building: then a change during the build shows as a new key next time."""
        entry = self._entries.get(identity)
        if entry is None or entry[0] != key:
            entry = self._entries[identity] = (key, build())
        return entry[1]  # type: ignore[return-value]

    def keep_only(self, identities: set) -> None:
        """Forget what belongs to things that are gone (closed sessions, unloaded models)."""
        for identity in [i for i in self._entries if i not in identities]:
            del self._entries[identity]


class _MemoryMessages:
    """MemoryUsage messages per ledger scope, rebuilt only after the ledger changed."""

    def __init__(self, ledger: MemoryLedger) -> None:
        self.ledger = ledger
        self.version = -1
        self.cache: dict = {}

    def fill(self, target, scope) -> None:
        if self.ledger.version != self.version:
            self.version = self.ledger.version
            self.cache.clear()
        messages = self.cache.get(scope)
        if messages is None:
            messages = self.cache[scope] = [
                pb.MemoryUsage(category=category, used_bytes=used, peak_bytes=peak)
                for category, (used, peak) in sorted(self.ledger.categories(scope).items())]
        target.extend(messages)


def _stats_key(stats: ExecutionTelemetry) -> tuple[int, int, int]:
    # Every execution a session records lands in its total-latency histogram.
    return stats.total_latency.count, stats.total_latency.sum_ns, stats.device_latency.count


class SnapshotBuilder:
    def __init__(self, state: RuntimeState) -> None:
        self.state = state
        self.started_unix_ns = time.time_ns()
        self.memory = _MemoryMessages(state.ledger)
        self._sessions = _MessageCache()
        self._models = _MessageCache()
        self._cores = _MessageCache()
        self._devices = _MessageCache()

    def build(self, observers: list[tuple[int, str]], now_ns: int | None = None) -> pb.Snapshot:
        """The snapshot at `now_ns` (default: the clock). Pass the instant in-daemon load was settled to,
        so that its execution counts and the cores' occupied time describe the same instant."""
        state = self.state
        snap = pb.Snapshot(unix_ns=time.time_ns(), daemon_start_unix_ns=self.started_unix_ns,
                           daemon_version=__version__)
        snap.topology.CopyFrom(state.topology)
        with state.lock:
            self._add_sessions(snap, state)
            self._add_models(snap, state)
            owners = {core: s.session_id for core, s in state.core_owner.items()}
            with state.telemetry.lock:  # under the state lock: a closing session is counted once
                state.telemetry.fill_ended(snap)
        telemetry = state.telemetry
        with telemetry.lock:
            now = time.monotonic_ns() if now_ns is None else now_ns
            snap.monotonic_ns = now
            for core in telemetry.cores:
                message = snap.cores.add()
                message.CopyFrom(self._core_message(core))
                message.owner_session_id = owners.get(core.core_id, 0)
                message.occupied_ns = core.occupied_until(now)
                message.in_flight = core.in_flight
                message.running = core.busy_since is not None
            device_counters = [(dict(d.ecc), d.resets) for d in telemetry.devices]
            links = [tuple(pair) for pair in telemetry.link_bytes]
            snap.sessions_opened = telemetry.sessions_opened
            snap.sessions_closed = telemetry.sessions_closed
        for index, (ecc, resets) in enumerate(device_counters):
            snap.devices.add().CopyFrom(self._device_message(index, ecc, resets))
        faults = state.faults.active()
        down = {f.link_id for f in faults if f.kind == pb.LINK_DOWN}
        for link_id, (a_to_b, b_to_a) in enumerate(links):
            snap.links.add(link_id=link_id, bytes_a_to_b=a_to_b, bytes_b_to_a=b_to_a, up=link_id not in down)
        snap.faults.extend(faults)
        snap.observers.extend(pb.Observer(pid=pid, command=command) for pid, command in observers)
        return snap

    # --- sessions and models (under the state lock) ---------------------------------------------

    def _add_sessions(self, snap: pb.Snapshot, state: RuntimeState) -> None:
        version = state.ledger.version
        for session in state.sessions.values():
            key = (version, len(session.tensors), _stats_key(session.stats))
            message = self._sessions.get(session.session_id, key, lambda: self._session_message(session))
            snap.sessions.add().CopyFrom(message)
        self._sessions.keep_only(set(state.sessions))

    def _session_message(self, session: Session) -> pb.SessionInfo:
        info = pb.SessionInfo(
            session_id=session.session_id, pid=session.pid, command=session.command,
            runtime_version=session.runtime_version, tag=session.tag, core_ids=session.core_ids,
            opened_unix_ns=session.opened_unix_ns, tensors=len(session.tensors))
        self.memory.fill(info.host_memory, ("host_session", session.session_id))
        for core in session.core_ids:
            self.memory.fill(info.core_memory.add(core_id=core).memory, ("session_core", session.session_id, core))
        session.stats.fill(info.stats)
        return info

    def _add_models(self, snap: pb.Snapshot, state: RuntimeState) -> None:
        # A model's identity and memory are fixed from load to unload; only the running flag and
        # the count change, and they are set on the copy.
        for model in state.models.values():
            info = snap.models.add()
            info.CopyFrom(self._models.get(model.model_id, None, lambda: self._model_message(model)))
            info.is_running = model.running > 0
            info.executions = model.executions
        self._models.keep_only(set(state.models))

    def _model_message(self, model) -> pb.ModelInfo:
        info = pb.ModelInfo(model_id=model.model_id, uuid=model.uuid, name=model.name, session_id=model.session_id)
        for sg in model.subgraphs:
            subgraph = info.subgraphs.add(name=sg.name, core_id=sg.core_id, device_index=sg.device_index)
            self.memory.fill(subgraph.device_memory, ("model_core", model.model_id, sg.core_id))
            self.memory.fill(subgraph.host_memory, ("model_host", model.model_id, sg.core_id))
        return info

    # --- cores (under the telemetry lock) and devices ---------------------------------------------

    def _core_message(self, core: CoreTelemetry) -> pb.CoreCounters:
        """What changes only when an execution ends or memory changes; the caller sets the rest."""
        key = (self.state.ledger.version, core.executions, core.device_time_ns, core.flops,
               sum(core.engine_busy_ns.values()), sum(core.engine_instructions.values()))
        return self._cores.get(core.core_id, key, lambda: self._build_core_message(core))

    def _build_core_message(self, core: CoreTelemetry) -> pb.CoreCounters:
        message = pb.CoreCounters(core_id=core.core_id, device_index=core.device_index,
                                  device_time_ns=core.device_time_ns, flops=core.flops, executions=core.executions)
        message.engines.extend(
            pb.EngineCounters(engine=e, busy_ns=ns, instructions=core.engine_instructions.get(e, 0))
            for e, ns in core.engine_busy_ns.items())
        self.memory.fill(message.memory, ("core", core.core_id))
        return message

    def _device_message(self, index: int, ecc: dict[str, int], resets: int) -> pb.DeviceCounters:
        memory = self.state.devices[index]
        # The ledger's version also moves on a zero-byte free, which changes only the stack stats.
        key = (self.state.ledger.version, memory.materialized_bytes, tuple(ecc.values()), resets)
        return self._devices.get(index, key, lambda: self._build_device_message(index, ecc, resets))

    def _build_device_message(self, index: int, ecc: dict[str, int], resets: int) -> pb.DeviceCounters:
        ledger, memory = self.state.ledger, self.state.devices[index]
        device = pb.DeviceCounters(
            device_index=index, memory_total_bytes=memory.total_bytes,
            memory_used_bytes=ledger.used(("device", index)), memory_peak_bytes=ledger.peak(("device", index)),
            materialized_bytes=memory.materialized_bytes, resets=resets, **ecc)
        device.stacks.extend(pb.HbmStack(
            size_bytes=s.size_bytes, used_bytes=s.used_bytes, free_bytes=s.free_bytes,
            largest_free_bytes=s.largest_free_bytes, free_blocks=s.free_blocks,
            allocations=s.allocations) for s in memory.stack_stats())
        self.memory.fill(device.memory, ("device", index))
        return device
