"""Executions in flight when neurond shuts down get UNAVAILABLE 'neurond is shutting down' at once."""

from __future__ import annotations

import threading
import time

import numpy as np

from neurontools.client import DaemonUnavailable, Device, Session
from neurontools.daemon.server.embedded import running_daemon
from neurontools.kernels.examples import mlp_program


def test_an_execute_in_flight_at_shutdown_gets_unavailable():
    outcome: dict = {}
    with running_daemon("inf2.xlarge") as daemon:
        session = Session(daemon.address, visible_cores="0").open()
        model = session.load_model("hung", {0: mlp_program(weights=np.ones((128, 256), np.float32))})
        tensors = {"xT": session.tensor_from(np.ones((128, 64), np.float32), core_id=0),
                   "out": session.allocate((64, 256), core_id=0), "rowmax": session.allocate((64, 1), core_id=0)}
        Device(daemon.address).inject_fault("core_hang", core=0)  # the execution waits 30 s for its timeout

        def call() -> None:
            try:
                outcome["result"] = model.execute(tensors, timing_only=True, check=False)
            except Exception as exc:  # what the caller sees
                outcome["error"] = exc
            outcome["at"] = time.monotonic()

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.3)  # the call is in flight, held by the hung core
        assert "at" not in outcome
        stopping = time.monotonic()
    caller.join(10)
    assert isinstance(outcome.get("error"), DaemonUnavailable), outcome
    assert str(outcome["error"]) == "neurond is shutting down"
    assert outcome["at"] - stopping < 1.0  # answered at once, not after the grace period
    session.close()
