"""
Micro-batching: concurrent asks for different numbers of one carrier merge
into calls of up to ``max_batch`` numbers (FedEx: 30).

The first ask opens a window of ``window_s``; each later ask, and each fetch
known to be on its way (:meth:`Batcher.expect`), keeps it open another
``window_s`` (up to :data:`MAX_DELAY_WINDOWS` windows in all), so a burst
that trickles in through the service's own Redis round trips still fills
whole batches. The batch goes out when the window closes or as soon
as it is full. A carrier message for one number
(not found, invalid) stays that number's answer; a call that fails as a
whole fails each of its askers with that error, and never another batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog

from carriers.base import TrackAnswer, missing_from_answer
from tracksvc.core.models import Carrier, CarrierMessage, TrackingResult

log = structlog.get_logger("batching")

#: The longest the first ask of a batch waits for company, in windows.
MAX_DELAY_WINDOWS = 20

#: Sends one batch: (numbers, deadline, wait_until) -> answers; raises CarrierError.
BatchCall = Callable[..., Awaitable[TrackAnswer]]


@dataclass
class _Ask:
    number: str
    deadline: float
    wait_until: float
    future: asyncio.Future[TrackingResult | CarrierMessage]


class Batcher:
    """
    Merges one carrier's single-number asks into batched calls.

    Args:
        carrier: whose numbers.
        call: sends one batch, as ``call(numbers, deadline=..., wait_until=...)``
            (:meth:`tracksvc.gate.CarrierGate.track`).
        max_batch: numbers per call at most.
        window_s: how long the first ask of a batch waits for company.
    """

    def __init__(self, carrier: Carrier, call: BatchCall, *, max_batch: int, window_s: float) -> None:
        self.carrier = carrier
        self.call = call
        self.max_batch = max(1, max_batch)
        self.window_s = window_s
        self._pending: list[_Ask] = []
        self._timer: asyncio.TimerHandle | None = None
        self._opened_at = 0.0
        self._last_at = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        #: Fetches under way that will ask soon (see :meth:`expect`).
        self.coming = 0

    def expect(self, count: int = 1) -> None:
        """Fetches that will (probably) ask have started: windows wait for them a little longer."""
        self.coming += count

    def expected(self, count: int = 1) -> None:
        """Those fetches have asked, or will not ask after all."""
        self.coming = max(0, self.coming - count)

    async def ask(
        self, number: str, *, deadline: float, wait_until: float
    ) -> TrackingResult | CarrierMessage:
        """
        The carrier's answer for one number, asked together with whoever asks meanwhile.

        Raises:
            CarrierError: the batch's call failed as a whole.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[TrackingResult | CarrierMessage] = loop.create_future()
        self._pending.append(_Ask(number, deadline, wait_until, future))
        self._last_at = loop.time()
        if len(self._pending) >= self.max_batch:
            self._flush()
        elif self._timer is None:
            self._open(loop)
        return await future

    def _open(self, loop: asyncio.AbstractEventLoop) -> None:
        self._opened_at = loop.time()
        self._timer = loop.call_at(self._opened_at + self.window_s, self._window_closing)

    def _window_closing(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        latest_s = self._opened_at + self.window_s * MAX_DELAY_WINDOWS
        close_at = min(self._last_at + self.window_s, latest_s)
        if self.coming > 0 and len(self._pending) < self.max_batch:
            close_at = max(close_at, min(now + self.window_s, latest_s))
        if now < close_at:  # asks are still coming in: keep the window open a little
            self._timer = loop.call_at(close_at, self._window_closing)
            return
        self._timer = None
        self._flush()

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._pending:
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            if len(self._pending) < self.max_batch:
                break
        if self._pending:  # a partial batch left over waits for its own window
            self._open(asyncio.get_running_loop())

    async def _send(self, batch: Sequence[_Ask]) -> None:
        live = [ask for ask in batch if not ask.future.done()]
        if not live:
            return
        numbers = list(dict.fromkeys(ask.number for ask in live))
        try:
            answers = await self.call(
                numbers,
                deadline=max(ask.deadline for ask in live),
                wait_until=max(ask.wait_until for ask in live),
            )
        except Exception as exc:  # CarrierError, or a bug: each asker sees it, nothing hangs
            for ask in live:
                if not ask.future.done():
                    ask.future.set_exception(exc)
            return
        except BaseException:
            for ask in live:
                ask.future.cancel()
            raise
        for ask in live:
            if not ask.future.done():
                ask.future.set_result(
                    answers.get(ask.number) or missing_from_answer(self.carrier, ask.number)
                )

    async def aclose(self) -> None:
        """Cancel the window and every batch in flight (app shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for ask in self._pending:
            ask.future.cancel()
        self._pending.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
