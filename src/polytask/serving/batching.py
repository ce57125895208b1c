"""Micro-batching: requests for the same task that arrive within a few milliseconds of each other
are predicted in one forward pass, on the one inference thread that owns the model."""
from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from typing import Callable

Predict = Callable[[list], list]     # inputs -> one record per input, in order


class MicroBatcher:
    """Collects the requests for one task and predicts them together.

    The first request waits ``wait_s`` for others to join (fewer when ``max_items`` inputs are
    already gathered); the joined inputs go to ``predict`` on ``executor`` (a single thread: the
    model is never run by two threads at once), and each request gets its own slice of the records.
    A request whose caller gave up (its timeout) is dropped before the forward pass. When a
    joined batch fails, each request is tried alone, so one bad input fails only its own request.

    Args:
        predict: inputs -> records, called on the executor.
        executor: where ``predict`` runs (off the event loop).
        wait_s: the batching window in seconds (0: no waiting, only what is already queued).
        max_items: inputs per forward pass at most.
    """

    def __init__(self, predict: Predict, executor: Executor, wait_s: float, max_items: int):
        self.predict, self.executor = predict, executor
        self.wait_s, self.max_items = wait_s, max_items
        self.queue: asyncio.Queue = asyncio.Queue()
        self.held: tuple | None = None           # a request that did not fit the last batch: first in the next
        self.worker: asyncio.Task | None = None
        self.batches = 0                         # forward calls made (for the tests)

    def start(self) -> None:
        self.worker = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            try:
                await self.worker
            except asyncio.CancelledError:
                pass

    async def submit(self, inputs: list) -> list:
        """The records of ``inputs`` (raises what ``predict`` raised for them)."""
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((inputs, future))
        return await future

    async def _gather(self) -> list:
        loop = asyncio.get_running_loop()
        if self.held is not None:
            batch, self.held = [self.held], None
        else:
            batch = [await self.queue.get()]
        size, deadline = len(batch[0][0]), loop.time() + self.wait_s
        while size < self.max_items:
            left = deadline - loop.time()
            if left <= 0 and self.queue.empty():
                break
            try:
                item = self.queue.get_nowait() if left <= 0 else await asyncio.wait_for(self.queue.get(), left)
            except asyncio.TimeoutError:
                break
            if size + len(item[0]) > self.max_items:    # it would overflow the batch: it opens the next one
                self.held = item
                break
            batch.append(item)
            size += len(item[0])
        return [(inputs, future) for inputs, future in batch if not future.done()]

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            if not batch:
                continue
            joined = [x for inputs, _ in batch for x in inputs]
            try:
                self.batches += 1
                records = await loop.run_in_executor(self.executor, self.predict, joined)
            except Exception as exc:        # noqa: BLE001 (handed to the requests)
                if len(batch) == 1:
                    _settle(batch[0][1], error=exc)
                    continue
                for inputs, future in batch:                  # find the request that fails
                    try:
                        _settle(future, await loop.run_in_executor(self.executor, self.predict, inputs))
                    except Exception as alone:   # noqa: BLE001
                        _settle(future, error=alone)
                continue
            start = 0
            for inputs, future in batch:
                _settle(future, records[start:start + len(inputs)])
                start += len(inputs)


def _settle(future: asyncio.Future, result=None, error: BaseException | None = None) -> None:
    if future.done():                        # its caller timed out meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
