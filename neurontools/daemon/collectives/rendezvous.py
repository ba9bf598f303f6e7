"""The ranks of one execution meeting at their collectives, and the data they exchange.

Each subgraph of a model runs in its core's worker thread (runtime/execution.py). A rank reaching a collective
registers at the collective's events (collectives.Event); the rank that completes an event -- the last
to arrive -- moves the data for everyone while the others wait (it reads every rank's source before it
writes any destination, so a collective may work in place), counts the bytes on each link and releases
them. A failure stops the execution's collectives: a link that is down, a rank that fails, a rank that
waits past NEURON_RT_EXEC_TIMEOUT, or an execution abandoned by its caller releases every waiting rank
with the same status and message, so no worker thread is ever left waiting.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

import numpy as np

from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.collectives.planning import ModelCollectives, cores_text
from neurontools.daemon.device.faults import FaultTable
from neurontools.daemon.isa.collective import CollectiveOp
from neurontools.daemon.isa.instruction import Env
from neurontools.daemon.device.telemetry import Telemetry

log = logging.getLogger("neurond.collectives")


class CollectiveFailure(Exception):
    """The execution's collectives stopped. status is the outcome of the ranks it stops, or None when the
    execution was abandoned (nobody waits for it: not counted)."""

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# -- the data of each kind of event: every source is read before any destination is written -------------

def _reduced(members: list[tuple[CollectiveOp, Env]]) -> np.ndarray:
    """op over the ranks' sources in rank order, in FP32: every rank gets the same bits."""
    first, env = members[0]
    total = np.array(first.reduction_input(env), dtype=np.float32)  # a copy: it accumulates
    for op, env in members[1:]:
        first.reduce(total, op.reduction_input(env), out=total)
    return total


def _all_reduce(members: list[tuple[CollectiveOp, Env]]) -> None:
    total = _reduced(members)
    for op, env in members:
        op.deliver_reduced(env, total)


def _reduce_scatter(members: list[tuple[CollectiveOp, Env]]) -> None:
    blocks = np.split(_reduced(members), len(members), axis=members[0][0].axis)
    for (op, env), block in zip(members, blocks):
        op.deliver_reduced(env, block)


def _all_gather(members: list[tuple[CollectiveOp, Env]]) -> None:
    gathered = np.concatenate([op.source(env) for op, env in members], axis=members[0][0].axis)
    for op, env in members:
        op.deliver(env, gathered)


def _permute(members: list[tuple[CollectiveOp, Env]]) -> None:
    sources = [np.array(op.source(env)) for op, env in members]
    shift = members[0][0].shift
    for rank, (op, env) in enumerate(members):
        op.deliver(env, sources[(rank - shift) % len(members)])


def _send_recv(members: list[tuple[CollectiveOp, Env]]) -> None:
    (send, sender_env), (receive, receiver_env) = members
    receive.deliver(receiver_env, send.source(sender_env))  # numpy copies through a buffer if they overlap


_EXCHANGES: dict[str, Callable[[list[tuple[CollectiveOp, Env]]], None]] = {
    "all_reduce": _all_reduce, "reduce_scatter": _reduce_scatter, "all_gather": _all_gather,
    "permute": _permute, "send_recv": _send_recv,
}


class ExecutionCollectives:
    """The meetings of one execution's ranks."""

    def __init__(self, plan: ModelCollectives, faults: FaultTable, telemetry: Telemetry) -> None:
        self._plan = plan
        self._faults = faults
        self._telemetry = telemetry
        self._changed = threading.Condition()
        self._arrived: list[dict[int, Env | None]] = [{} for _ in plan.events]  # per event: core -> its env
        self._done = [False] * len(plan.events)
        self._failure: tuple[int | None, str] | None = None  # (status, message) of the first failure

    def rank(self, core: int, deadline_ns: int, timeout_ns: int) -> "RankRendezvous":
        """The rendezvous of the rank on `core`, which may wait until `deadline_ns` (monotonic ns: the
        session's NEURON_RT_EXEC_TIMEOUT of `timeout_ns` after the rank started)."""
        return RankRendezvous(self, core, deadline_ns, timeout_ns)

    def abort(self, status: int | None, message: str) -> None:
        """Stops the execution's collectives: every waiting rank and every rank still to come fails with
        this status and message. The first failure wins; later ones are consequences."""
        with self._changed:
            if self._failure is None:
                self._failure = (status, message)
            self._changed.notify_all()

    def meet(self, core: int, op: CollectiveOp, env: Env | None, deadline_ns: int, timeout_ns: int) -> None:
        """The rank on `core` reached `op`: returns once all of its events are done, or raises
        CollectiveFailure."""
        events = self._plan.events_of[(core, op.index)]
        completes = []
        with self._changed:
            self._raise_if_failed()
            for index in events:
                arrived = self._arrived[index]
                arrived[core] = env
                if len(arrived) == len(self._plan.events[index].members):
                    completes.append(index)
        for index in completes:  # outside the lock: other events proceed meanwhile
            self._complete(index)
        with self._changed:
            while not all(self._done[index] for index in events):
                self._raise_if_failed()
                remaining = deadline_ns - time.monotonic_ns()
                if remaining <= 0:
                    absent = sorted({c for index in events if not self._done[index]
                                     for c, _ in self._plan.events[index].members if c not in self._arrived[index]})
                    self.abort(pb.TIMED_OUT, (
                        f"NeuronCore {core} waited at {op} for NeuronCore {cores_text(absent)}, which did not reach "
                        f"it within NEURON_RT_EXEC_TIMEOUT ({timeout_ns / 1e9:g} s)"))
                    self._raise_if_failed()
                self._changed.wait(remaining / 1e9)

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise CollectiveFailure(*self._failure)  # one exception per raising thread

    def _complete(self, index: int) -> None:
        """Carries out an event every rank has reached: links, data, link counters."""
        event = self._plan.events[index]
        envs = self._arrived[index]  # complete: no rank writes it any more
        try:
            for link in event.link_bytes:
                down = self._faults.link_down(link)
                if down is not None:
                    raise CollectiveFailure(pb.COMPLETED_WITH_ERR, f"{down.description}: {event.description} "
                                                                   "routes through it")
            if envs[event.members[0][0]] is not None:  # timing-only executions move no data
                _EXCHANGES[event.members[0][1].kind]([(op, envs[core]) for core, op in event.members])
            with self._telemetry.lock:
                for link, (a_to_b, b_to_a) in event.link_bytes.items():
                    counters = self._telemetry.link_bytes[link]
                    counters[0] += a_to_b
                    counters[1] += b_to_a
        except CollectiveFailure as failure:
            self.abort(failure.status, failure.message)
            raise
        except Exception as exc:  # a daemon bug fails the execution, never a worker
            log.exception("collective %s failed", event.description)
            message = f"internal error in neurond during {event.description}: {exc}"
            self.abort(pb.COMPLETED_WITH_ERR, message)
            raise CollectiveFailure(pb.COMPLETED_WITH_ERR, message) from exc
        with self._changed:
            self._done[index] = True
            self._arrived[index] = {}  # the ranks' arrays are no longer needed here
            self._changed.notify_all()


class RankRendezvous:
    """Where one rank meets its peers (program.Rendezvous)."""

    def __init__(self, execution: ExecutionCollectives, core: int, deadline_ns: int, timeout_ns: int) -> None:
        self._execution = execution
        self._core = core
        self._deadline_ns = deadline_ns
        self._timeout_ns = timeout_ns

    def meet(self, op: CollectiveOp, env: Env | None) -> None:
        self._execution.meet(self._core, op, env, self._deadline_ns, self._timeout_ns)
