"""Building a Snapshot: every cumulative counter of the machine at one monotonic instant."""

from __future__ import annotations

import time

from neurontools import __version__
from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.memory_ledger import MemoryLedger
from neurontools.daemon.runtime_state import RuntimeState


class _MemoryMessages:
    """MemoryUsage messages per ledger scope, rebuilt only after the ledger changed.

    Building protobuf messages in Python is most of a snapshot's cost; memory only changes on
    allocation and free, so steady-state snapshots copy cached messages (in C) instead."""

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


class SnapshotBuilder:
    def __init__(self, state: RuntimeState) -> None:
        self.state = state
        self.started_unix_ns = time.time_ns()
        self.memory = _MemoryMessages(state.ledger)
        self._model_messages: dict[int, pb.ModelInfo] = {}

    def build(self, observers: list[tuple[int, str]]) -> pb.Snapshot:
        state = self.state
        ledger = state.ledger
        snap = pb.Snapshot(unix_ns=time.time_ns(), daemon_start_unix_ns=self.started_unix_ns,
                           daemon_version=__version__)
        snap.topology.CopyFrom(state.topology)
        with state.lock:
            self._sessions(snap, state)
            self._models(snap, state)
            owners = {core: s.session_id for core, s in state.core_owner.items()}
            with state.telemetry.lock:  # under the state lock: a closing session is counted once
                state.telemetry.fill_ended(snap)
        telemetry = state.telemetry
        with telemetry.lock:
            now = time.monotonic_ns()
            snap.monotonic_ns = now
            for core in telemetry.cores:
                message = snap.cores.add(
                    core_id=core.core_id, device_index=core.device_index,
                    owner_session_id=owners.get(core.core_id, 0), occupied_ns=core.occupied_until(now),
                    device_time_ns=core.device_time_ns, flops=core.flops, executions=core.executions,
                    in_flight=core.in_flight, running=core.busy_since is not None)
                message.engines.extend(
                    pb.EngineCounters(engine=e, busy_ns=ns, instructions=core.engine_instructions.get(e, 0))
                    for e, ns in core.engine_busy_ns.items())
            ecc = [dict(d.ecc, resets=d.resets) for d in telemetry.devices]
            links = [tuple(pair) for pair in telemetry.link_bytes]
            snap.sessions_opened = telemetry.sessions_opened
            snap.sessions_closed = telemetry.sessions_closed
        for message in snap.cores:
            self.memory.fill(message.memory, ("core", message.core_id))
        for index, memory in enumerate(state.devices):
            stacks = memory.stack_stats()
            device = snap.devices.add(
                device_index=index, memory_total_bytes=memory.total_bytes,
                memory_used_bytes=ledger.used(("device", index)),
                memory_peak_bytes=ledger.peak(("device", index)),
                materialized_bytes=memory.materialized_bytes, **ecc[index])
            device.stacks.extend(pb.HbmStack(
                size_bytes=s.size_bytes, used_bytes=s.used_bytes, free_bytes=s.free_bytes,
                largest_free_bytes=s.largest_free_bytes, free_blocks=s.free_blocks,
                allocations=s.allocations) for s in stacks)
            self.memory.fill(device.memory, ("device", index))
        faults = state.faults.active()
        down = {f.link_id for f in faults if f.kind == pb.LINK_DOWN}
        for link_id, (a_to_b, b_to_a) in enumerate(links):
            snap.links.add(link_id=link_id, bytes_a_to_b=a_to_b, bytes_b_to_a=b_to_a, up=link_id not in down)
        snap.faults.extend(faults)
        snap.observers.extend(pb.Observer(pid=pid, command=command) for pid, command in observers)
        return snap

    def _sessions(self, snap: pb.Snapshot, state: RuntimeState) -> None:
        for session in state.sessions.values():
            info = snap.sessions.add(
                session_id=session.session_id, pid=session.pid, command=session.command,
                runtime_version=session.runtime_version, tag=session.tag, core_ids=session.core_ids,
                opened_unix_ns=session.opened_unix_ns, tensors=len(session.tensors))
            self.memory.fill(info.host_memory, ("host_session", session.session_id))
            for core in session.core_ids:
                self.memory.fill(info.core_memory.add(core_id=core).memory,
                                 ("session_core", session.session_id, core))
            session.stats.fill(info.stats)

    def _models(self, snap: pb.Snapshot, state: RuntimeState) -> None:
        # A model's identity and memory are fixed from load to unload: build its message once and
        # copy it (in C) into each snapshot; only the running flag and the count change.
        cache = self._model_messages
        for model_id in [m for m in cache if m not in state.models]:
            del cache[model_id]
        for model in state.models.values():
            prototype = cache.get(model.model_id)
            if prototype is None:
                prototype = cache[model.model_id] = self._model_message(model)
            info = snap.models.add()
            info.CopyFrom(prototype)
            info.is_running = model.running > 0
            info.executions = model.executions

    def _model_message(self, model) -> pb.ModelInfo:
        info = pb.ModelInfo(model_id=model.model_id, uuid=model.uuid, name=model.name, session_id=model.session_id)
        for sg in model.subgraphs:
            subgraph = info.subgraphs.add(name=sg.name, core_id=sg.core_id, device_index=sg.device_index)
            self.memory.fill(subgraph.device_memory, ("model_core", model.model_id, sg.core_id))
            self.memory.fill(subgraph.host_memory, ("model_host", model.model_id, sg.core_id))
        return info
