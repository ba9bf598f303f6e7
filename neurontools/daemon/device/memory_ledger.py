"""Memory accounting: used and peak bytes per (scope, category).

The allocators place memory; the ledger only counts it. One allocation is charged to several scopes at
once (its device, core, session, model...), so every face of the snapshot — device totals, per-core
breakdowns, per-model subgraph usage — reads the same numbers instead of re-summing regions.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable


class _ScopeBook:
    """Counters of one scope. The total is kept alongside the categories so its peak is a real peak
    (the peak of a sum is not the sum of the per-category peaks)."""

    __slots__ = ("used", "peak", "total", "total_peak")

    def __init__(self) -> None:
        self.used: dict[int, int] = {}
        self.peak: dict[int, int] = {}
        self.total = 0
        self.total_peak = 0


class MemoryLedger:
    """Used and peak bytes per (scope, category). Scopes are hashable tuples chosen by callers,
    e.g. ("device", 3), ("core", 7), ("session", 12), ("session_core", 12, 7), ("model_core", 10001, 7),
    ("host_session", 12), ("model_host", 10001)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._books: dict[Hashable, _ScopeBook] = {}
        # Bumped by every change, so readers (snapshots) can reuse what they built from an older read.
        self.version = 0

    def add(self, scopes: Iterable[Hashable], category: int, nbytes: int) -> None:
        """Charge `nbytes` of `category` to every scope and raise their peaks."""
        if nbytes < 0:
            raise ValueError(f"cannot add a negative byte count ({nbytes})")
        with self._lock:
            self.version += 1
            for scope in scopes:
                book = self._books.get(scope)
                if book is None:
                    book = self._books[scope] = _ScopeBook()
                used = book.used.get(category, 0) + nbytes
                book.used[category] = used
                if used > book.peak.get(category, -1):
                    book.peak[category] = used
                book.total += nbytes
                if book.total > book.total_peak:
                    book.total_peak = book.total

    def sub(self, scopes: Iterable[Hashable], category: int, nbytes: int) -> None:
        """Release `nbytes` of `category` from every scope.

        Going below zero means a caller freed what it never charged (or charged to other scopes): that is
        a bug in the daemon, reported as AssertionError before any scope is changed."""
        if nbytes < 0:
            raise ValueError(f"cannot subtract a negative byte count ({nbytes})")
        scopes = tuple(scopes)
        with self._lock:
            for scope in scopes:
                book = self._books.get(scope)
                used = book.used.get(category, 0) if book is not None else 0
                if used < nbytes:
                    raise AssertionError(
                        f"memory ledger underflow: scope {scope!r} category {category} "
                        f"has {used} bytes, cannot release {nbytes}"
                    )
            # Bumped even for zero bytes: nothing changes here, but the allocator's count of
            # regions does, and readers key what they build from it on this version.
            self.version += 1
            if nbytes == 0:
                return
            for scope in scopes:
                book = self._books[scope]
                book.used[category] -= nbytes
                book.total -= nbytes

    def used(self, scope: Hashable, category: int | None = None) -> int:
        """Bytes in use in `scope` for `category`, or for all categories when None."""
        with self._lock:
            book = self._books.get(scope)
            if book is None:
                return 0
            return book.total if category is None else book.used.get(category, 0)

    def peak(self, scope: Hashable, category: int | None = None) -> int:
        """Highest value `used(scope, category)` ever had (since the scope was last forgotten)."""
        with self._lock:
            book = self._books.get(scope)
            if book is None:
                return 0
            return book.total_peak if category is None else book.peak.get(category, 0)

    def categories(self, scope: Hashable) -> dict[int, tuple[int, int]]:
        """category -> (used, peak) for every category ever charged in `scope`."""
        with self._lock:
            book = self._books.get(scope)
            if book is None:
                return {}
            return {category: (used, book.peak[category]) for category, used in book.used.items()}

    def forget(self, scope: Hashable) -> None:
        """Drop a scope entirely (a closed session, an unloaded model); unknown scopes are ignored."""
        with self._lock:
            self.version += 1
            self._books.pop(scope, None)
