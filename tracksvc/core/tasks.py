"""Helpers for the service's own background tasks."""

from __future__ import annotations

import asyncio

#: How long one cancel is given to land before it is repeated.
CANCEL_RETRY_S = 0.1


async def cancel_and_wait(task: asyncio.Task[None] | None) -> None:
    """
    Cancel a task and wait until it has ended, cancelling again if need be.

    On Python 3.11, ``asyncio.wait_for`` (which redis-py uses around socket
    writes) can swallow a cancel that lands just as the inner call finishes
    (CPython gh-86296, fixed in 3.12): the task would run on and a plain
    ``task.cancel(); await task`` would wait forever.
    """
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=CANCEL_RETRY_S)
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not warn; it was logged where it happened
