"""MemoryLedger: used and peak bytes per (scope, category)."""

from __future__ import annotations

import threading

import pytest

from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.device.memory_ledger import MemoryLedger

DEVICE = ("device", 0)
CORE = ("core", 1)
SESSION = ("session", 12)


def test_add_charges_every_scope_per_category() -> None:
    ledger = MemoryLedger()
    ledger.add([DEVICE, CORE, SESSION], pb.TENSORS, 100)
    ledger.add([DEVICE, CORE], pb.CONSTANTS, 40)

    assert ledger.used(DEVICE, pb.TENSORS) == 100
    assert ledger.used(DEVICE, pb.CONSTANTS) == 40
    assert ledger.used(DEVICE) == 140
    assert ledger.used(SESSION) == 100
    assert ledger.used(SESSION, pb.CONSTANTS) == 0
    assert ledger.used(("device", 1)) == 0


def test_peak_per_category_and_peak_of_the_total_are_tracked_separately() -> None:
    ledger = MemoryLedger()
    ledger.add([CORE], pb.TENSORS, 100)
    ledger.sub([CORE], pb.TENSORS, 100)
    ledger.add([CORE], pb.CONSTANTS, 70)

    assert ledger.used(CORE) == 70
    assert ledger.peak(CORE, pb.TENSORS) == 100
    assert ledger.peak(CORE, pb.CONSTANTS) == 70
    # The tensors and constants never coexisted: the total peaked at 100, not at 170.
    assert ledger.peak(CORE) == 100
    ledger.add([CORE], pb.TENSORS, 50)
    assert ledger.peak(CORE) == 120
    assert ledger.peak(CORE, pb.TENSORS) == 100


def test_categories_lists_only_touched_categories_with_used_and_peak() -> None:
    ledger = MemoryLedger()
    assert ledger.categories(CORE) == {}
    ledger.add([CORE], pb.MODEL_CODE, 30)
    ledger.add([CORE], pb.TENSORS, 10)
    ledger.sub([CORE], pb.MODEL_CODE, 30)

    assert ledger.categories(CORE) == {pb.MODEL_CODE: (0, 30), pb.TENSORS: (10, 10)}


def test_sub_below_zero_is_a_bug_and_changes_nothing() -> None:
    ledger = MemoryLedger()
    ledger.add([DEVICE, CORE], pb.TENSORS, 100)
    ledger.add([DEVICE], pb.TENSORS, 50)

    with pytest.raises(AssertionError, match=r"\('core', 1\).*100 bytes, cannot release 120"):
        ledger.sub([DEVICE, CORE], pb.TENSORS, 120)
    assert ledger.used(DEVICE) == 150
    assert ledger.used(CORE) == 100
    with pytest.raises(AssertionError):
        ledger.sub([SESSION], pb.TENSORS, 1)


def test_negative_amounts_are_rejected() -> None:
    ledger = MemoryLedger()
    with pytest.raises(ValueError):
        ledger.add([CORE], pb.TENSORS, -1)
    with pytest.raises(ValueError):
        ledger.sub([CORE], pb.TENSORS, -1)


def test_scopes_may_be_a_generator() -> None:
    ledger = MemoryLedger()
    ledger.add((("core", i) for i in range(3)), pb.TENSORS, 8)
    ledger.sub((("core", i) for i in range(3)), pb.TENSORS, 8)

    assert [ledger.used(("core", i)) for i in range(3)] == [0, 0, 0]
    assert [ledger.peak(("core", i)) for i in range(3)] == [8, 8, 8]


def test_forget_drops_used_and_peak_of_one_scope_only() -> None:
    ledger = MemoryLedger()
    ledger.add([DEVICE, SESSION], pb.TENSORS, 64)
    ledger.sub([DEVICE, SESSION], pb.TENSORS, 64)
    ledger.forget(SESSION)
    ledger.forget(("session", 999))  # unknown scopes are fine

    assert ledger.peak(SESSION) == 0
    assert ledger.categories(SESSION) == {}
    assert ledger.peak(DEVICE) == 64


def test_concurrent_add_and_sub_lose_no_update() -> None:
    ledger = MemoryLedger()
    rounds = 2000

    def work() -> None:
        for _ in range(rounds):
            ledger.add([DEVICE, CORE], pb.TENSORS, 3)
            ledger.sub([DEVICE], pb.TENSORS, 1)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert ledger.used(DEVICE) == 4 * rounds * 2
    assert ledger.used(CORE) == 4 * rounds * 3
