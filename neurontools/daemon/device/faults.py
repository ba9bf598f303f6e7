"""Injected faults: the failures real fleets see, on purpose (scenarios, alert-rule tests).

ECC events are counted at once; an uncorrected HBM error also fails the next execution on each
core of its device. Lasting faults (a hung core, NaN outputs, a link down) stay until cleared or
until their duration ends. A device reset is carried out by the admin servicer (it ends sessions).
"""

from __future__ import annotations

import itertools
import threading
import time

from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.device import topology as topo
from neurontools.daemon.errors import InvalidArgument
from neurontools.daemon.device.telemetry import Telemetry

_ECC_FIELD = {
    pb.MEM_ECC_CORRECTED: "mem_ecc_corrected",
    pb.MEM_ECC_UNCORRECTED: "mem_ecc_uncorrected",
    pb.SRAM_ECC_CORRECTED: "sram_ecc_corrected",
    pb.SRAM_ECC_UNCORRECTED: "sram_ecc_uncorrected",
}
LASTING = (pb.CORE_HANG, pb.NUMERICAL_ERROR, pb.LINK_DOWN)
MAX_EVENTS = 1_000_000


class FaultTable:
    def __init__(self, machine: topo.MachineSpec, telemetry: Telemetry) -> None:
        self.machine = machine
        self.telemetry = telemetry
        self._links = machine.links()
        self._lock = threading.Lock()  # workers read faults while the loop injects them
        self._lasting: dict[int, pb.Fault] = {}
        self._ids = itertools.count(1)
        self._uncorrected_pending: set[int] = set()  # cores whose next execution meets an HBM UE

    # -- injection ------------------------------------------------------------------------------

    def inject(self, request: pb.Fault) -> pb.Fault:
        fault = pb.Fault()
        fault.CopyFrom(request)
        fault.fault_id = next(self._ids)
        fault.count = fault.count or 1
        kind = fault.kind
        if kind in _ECC_FIELD or kind == pb.DEVICE_RESET:
            self._check_device(fault.device_index)
        if kind in _ECC_FIELD:
            if fault.count > MAX_EVENTS:
                raise InvalidArgument(f"count {fault.count} is above the limit of {MAX_EVENTS} events per injection")
            self._count_ecc(fault)
        elif kind in (pb.CORE_HANG, pb.NUMERICAL_ERROR):
            if fault.core_id >= self.machine.core_count:
                raise InvalidArgument(f"NeuronCore {fault.core_id} does not exist: this machine has cores "
                                      f"0-{self.machine.core_count - 1}")
            what = "hangs" if kind == pb.CORE_HANG else "produces NaN outputs"
            fault.description = f"NeuronCore {fault.core_id} {what}"
        elif kind == pb.LINK_DOWN:
            if fault.link_id >= len(self._links):
                raise InvalidArgument(f"NeuronLink {fault.link_id} does not exist: this machine has "
                                      + (f"links 0-{len(self._links) - 1}" if self._links else "no links"))
            a, b = self._links[fault.link_id]
            fault.description = f"NeuronLink {fault.link_id} (device {a} <-> device {b}) is down"
        elif kind == pb.DEVICE_RESET:
            fault.description = f"neuron device {fault.device_index} was reset"
            with self.telemetry.lock:
                self.telemetry.devices[fault.device_index].resets += 1
        else:
            raise InvalidArgument(f"unknown fault kind {kind}; use one of: "
                                  + ", ".join(n for n in pb.FaultKind.keys() if n != "FAULT_KIND_UNSPECIFIED"))
        if kind in LASTING:
            if fault.duration_ns:
                fault.expires_unix_ns = time.time_ns() + fault.duration_ns
            with self._lock:
                self._lasting[fault.fault_id] = fault
        return fault

    def _check_device(self, device: int) -> None:
        if device >= len(self.machine.devices):
            raise InvalidArgument(f"neuron device {device} does not exist: this machine has devices "
                                  f"0-{len(self.machine.devices) - 1}")

    def _count_ecc(self, fault: pb.Fault) -> None:
        field = _ECC_FIELD[fault.kind]
        with self.telemetry.lock:
            self.telemetry.devices[fault.device_index].ecc[field] += fault.count
        fault.description = f"{fault.count} {field.replace('_', ' ')} event(s) on neuron device {fault.device_index}"
        if fault.kind == pb.MEM_ECC_UNCORRECTED:
            first = fault.device_index * topo.CORES_PER_DEVICE
            with self._lock:
                self._uncorrected_pending.update(range(first, first + topo.CORES_PER_DEVICE))

    def clear(self, fault_id: int) -> int:
        with self._lock:
            if fault_id == 0:
                cleared = len(self._lasting)
                self._lasting.clear()
                return cleared
            return 1 if self._lasting.pop(fault_id, None) is not None else 0

    # -- what is in force -------------------------------------------------------------------------

    def active(self) -> list[pb.Fault]:
        now = time.time_ns()
        with self._lock:
            for fault_id in [i for i, f in self._lasting.items() if f.expires_unix_ns and f.expires_unix_ns <= now]:
                del self._lasting[fault_id]
            return list(self._lasting.values())

    def _in_force(self, kind: int, **where: int) -> pb.Fault | None:
        return next((f for f in self.active() if f.kind == kind
                     and all(getattr(f, k) == v for k, v in where.items())), None)

    def core_hang(self, core_id: int) -> pb.Fault | None:
        return self._in_force(pb.CORE_HANG, core_id=core_id)

    def core_numerical(self, core_id: int) -> pb.Fault | None:
        return self._in_force(pb.NUMERICAL_ERROR, core_id=core_id)

    def link_down(self, link_id: int) -> pb.Fault | None:
        return self._in_force(pb.LINK_DOWN, link_id=link_id)

    def uncorrected_pending(self, core_id: int) -> bool:
        """Whether the core's next execution meets an uncorrected HBM error (without taking it)."""
        with self._lock:
            return core_id in self._uncorrected_pending

    def take_uncorrected(self, core_id: int) -> bool:
        """True once per core after an uncorrected HBM ECC event on its device."""
        with self._lock:
            if core_id in self._uncorrected_pending:
                self._uncorrected_pending.discard(core_id)
                return True
            return False
