"""The query guards: ``query_timeout`` and ``query_memory_limit``, and how they stop a query.

Memory goes through the engines' own pools (DataFusion's greedy pool in the runtime of
the context that executes; DuckDB's ``memory_limit``), so an operator that cannot spill
fails with ``QueryLimitExceeded`` instead of taking the server's memory.

Time is the engine's: planning plus every wait for the next result batch, not the time a
slow client takes to read them, so a long export to a slow reader is not cut off.
Planning is not interruptible (DataFusion's parser refuses nesting deeper than 50
levels, and ``arrowlog/sql/policy.py`` refuses long operator chains, so it stays short);
each wait for a batch is bounded by the time left. DataFusion's wait is an
``asyncio.wait_for`` over the stream's next batch (``bounded``), whose cancellation drops
the engine's work at its next yield point; DuckDB's is a timer calling ``interrupt()``
(``Interrupter``).

Under ``arrowlog serve`` the engines run in query worker processes without a time limit
of their own: ``arrowlog/sql/workers.py`` measures the same engine time from outside and
interrupts, or kills, the worker.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from datafusion import RuntimeEnvBuilder

from arrowlog.errors import ArrowlogError, QueryLimitExceeded
from arrowlog.sql.policy import engine_error

__all__ = ["Budget", "Interrupter", "Limits", "bounded"]

_OUT_OF_MEMORY = re.compile(r"Resources exhausted|Out of Memory Error|failed to allocate", re.I)


@dataclass(frozen=True)
class Limits:
    """The query guards, and how their violations read (clear errors).

    Args:
        timeout: seconds of engine time a query may use (0: no limit), ``query_timeout``.
        memory_limit: bytes a query's operators may hold (0: no limit),
            ``query_memory_limit``.
    """

    timeout: float = 0.0
    memory_limit: int = 0

    def runtime(self) -> RuntimeEnvBuilder | None:
        """DataFusion's runtime with the memory pool (None: the default, unbounded)."""
        if not self.memory_limit:
            return None
        return RuntimeEnvBuilder().with_greedy_memory_pool(int(self.memory_limit))

    def budget(self) -> Budget | None:
        """The time one query may use, or None without a time limit."""
        return Budget(self) if self.timeout else None

    def timed_out(self) -> QueryLimitExceeded:
        return QueryLimitExceeded(
            f"query exceeded the time limit of {self.timeout:g} s (query_timeout)"
        )

    def translate(self, e: Exception, *, timed_out: bool = False) -> ArrowlogError:
        """An engine error as ours: a limit that was hit, else ``policy.engine_error``."""
        message = str(e).strip()
        if timed_out:
            return self.timed_out()
        if self.memory_limit and _OUT_OF_MEMORY.search(message):
            return QueryLimitExceeded(
                f"query exceeded the memory limit of {self.memory_limit} bytes "
                f"(query_memory_limit): {message}"
            )
        return engine_error(e)


class Budget:
    """The engine time one query has left (``query_timeout`` minus what it has used)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.left = limits.timeout

    def spend(self, seconds: float) -> None:
        self.left -= seconds
        if self.left <= 0:
            raise self.limits.timed_out()


def bounded(stream: Any, budget: Budget) -> Iterator[Any]:
    """The stream's batches, within the budget's time.

    The wait for the first batch, where aggregations, sorts and join builds do all their
    work, is an ``asyncio.wait_for`` over the stream's ``__anext__`` on one shared
    event-loop thread (so it works from any thread, also one whose own loop is running,
    as in Jupyter); on time-out the pending ``__anext__`` is cancelled. Later batches
    come from the plain iterator, the budget checked after each: a handoff per batch
    would halve the speed of large scans, and a scan returns batches steadily.
    """
    loop = _waiter_loop()
    try:
        started = time.monotonic()
        wait = asyncio.wait_for(_next_batch(stream), budget.left)
        future = asyncio.run_coroutine_threadsafe(wait, loop)
        try:
            batch = future.result()
        except TimeoutError:
            raise budget.limits.timed_out() from None
        if batch is None:
            return
        budget.spend(time.monotonic() - started)
        yield batch
        while True:
            started = time.monotonic()
            batch = next(stream, None)
            if batch is None:
                return
            budget.spend(time.monotonic() - started)
            yield batch
    finally:
        # The last reference to the engine's stream (a traceback keeps this frame alive):
        # dropping it stops the engine's work at its next yield point.
        del stream


async def _next_batch(stream: Any) -> Any:
    try:
        return await stream.__anext__()
    except StopAsyncIteration:
        return None


_WAITER: asyncio.AbstractEventLoop | None = None
_WAITER_LOCK = threading.Lock()


def _waiter_loop() -> asyncio.AbstractEventLoop:
    """The event loop (in a daemon thread of its own) that bounded queries wait on."""
    global _WAITER
    with _WAITER_LOCK:
        if _WAITER is None:
            loop = asyncio.new_event_loop()
            threading.Thread(
                target=loop.run_forever, name="arrowlog-query-waiter", daemon=True
            ).start()
            _WAITER = loop
        return _WAITER


class Interrupter:
    """Interrupts a DuckDB connection when its budget runs out while the guard is entered."""

    def __init__(self, con: Any, budget: Budget | None) -> None:
        self.fired = False
        self._con = con
        self._budget = budget
        self._timer: threading.Timer | None = None
        self._started = 0.0

    def __enter__(self) -> None:
        if self._budget is not None:
            self._started = time.monotonic()
            self._timer = threading.Timer(max(0.0, self._budget.left), self._fire)
            self._timer.daemon = True
            self._timer.start()

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None and self._budget is not None:
            self._timer.cancel()
            self._timer = None
            if not self.fired:
                self._budget.spend(time.monotonic() - self._started)

    def _fire(self) -> None:
        self.fired = True
        self._con.interrupt()
