"""Helpers for tests and examples: an in-process neurond on a temporary Unix socket."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from neurontools.daemon.server.embedded import running_daemon


@contextlib.contextmanager
def embedded_daemon(instance_type: str = "inf2.48xlarge", *, instance_id: str | None = None,
                    **options) -> Iterator[str]:
    """Yields the address ("unix:///tmp/.../neurond.sock") of a daemon that lives for the block."""
    with running_daemon(instance_type, instance_id=instance_id, **options) as daemon:
        yield daemon.address
