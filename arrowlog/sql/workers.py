"""Query workers: untrusted SQL runs in a small supervised pool of processes, not the server.

``Log.sql`` hands a query to ``QueryWorkers`` when ``query_workers`` is set (``arrowlog
serve`` sets 2 by default; an embedded ``arrowlog.open()`` keeps running queries in its own
process unless asked). Why processes: DataFusion and DuckDB allocate outside their memory
pools (``repeat('x', 2000000000)``), and Rust aborts the whole process when an allocation
fails; and datafusion-python cannot stop a task that has not produced its next batch, so
an abandoned or timed-out query kept the server's cores busy. A worker can be capped
(``RLIMIT_AS``), interrupted (SIGINT in its main thread), killed and replaced.

One query at a time per worker::

    parent                                  worker (worker_main.py)
    PLAN(sql, engine, params, names, mode) ->
                                       <-   RESOLVE(shape, stream)     while the engine plans
    SNAPSHOT(shape)                   ->
                                       <-   PLANNING(kind)             each plan, for metrics
                                       <-   RESOLVE(snapshot, stream)  (mode "execute" only)
    SNAPSHOT(meta) + TABLE frames     ->                         (the buffer tables it lacks)
                                       <-   PLANNED(schema) | ERROR
    RUN                               ->    (when the result is iterated; not for "schema")
                                       <-   BATCH ... END | ERROR
    CANCEL                            ->    (client gone, query_timeout, result closed)

A request in mode "schema" (GetFlightInfo, GetSchema, a prepared statement) plans over
the streams' shapes only: the worker asks for no snapshot, and keeps no plan.

A snapshot carries the stream's schema, time column, live segments with their pruning
statistics (sent again only when the segment list changed: ``segments_key``) and the ids
(WAL sequence numbers) of its buffered tables; only tables the worker has not seen cross,
as Arrow IPC, so a query over a busy stream sends each buffered batch to a worker once.

Stopping: a cancel makes the worker raise ``KeyboardInterrupt`` inside the engine; the
parent reads what is still in flight until the worker's last frame for the query, then
checks the worker is idle (its CPU time over ``_IDLE_CHECK`` seconds). A worker that does
not come back within ``_CANCEL_GRACE`` seconds, or is still busy, is killed and replaced.
All of that happens in a background thread: the caller gets its error at once.

Time (``query_timeout``) is measured here, as the in-process engine measures it: the time
spent waiting for the worker's next frame (planning, and producing each batch), not the
time the caller takes between batches. Memory: the engine's pool in the worker
(``query_memory_limit``), and the process cap (``query_worker_memory``).
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import logging
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

from arrowlog import errors
from arrowlog.config import Settings
from arrowlog.errors import ArrowlogError, InvalidInput, QueryLimitExceeded, Unavailable
from arrowlog.sql import framing as fr
from arrowlog.sql.catalog import StreamTables
from arrowlog.sql.policy import Params
from arrowlog.sql.result import QueryResult

__all__ = ["QueryWorkers", "planning_stop", "worker_allowance"]

logger = logging.getLogger(__name__)

_POLL = 0.1  # seconds between checks of a stop condition while waiting for a worker
# Seconds a cancelled worker has to send its last frame. datafusion-python looks for a
# pending signal once a second while it waits for the engine (``wait_for_future``), so an
# interrupt lands within 1 s; a worker not back by then is killed.
_CANCEL_GRACE = 1.2
_IDLE_CHECK = 0.2  # seconds over which a cancelled worker's CPU time is measured
_IDLE_CPU = 0.05  # CPU seconds in _IDLE_CHECK above which it counts as still busy
_SPAWN_RETRY = 1.0
_START_TIMEOUT = 60.0  # seconds a new worker has to import, warm up and say it is ready
_MIN_ALLOWANCE = 1 << 30
_TICK = os.sysconf("SC_CLK_TCK")

# What tells that the query being planned in this context is no longer wanted (a server
# sets "the client has left"): checked while the query waits for a worker and while it is
# planned, and then, unless ``stop_when`` replaces it, while its result is computed.
planning_stop: contextvars.ContextVar[Callable[[], bool] | None] = contextvars.ContextVar(
    "arrowlog_planning_stop", default=None
)


def worker_allowance(settings: Settings) -> int:
    """Bytes a worker may allocate beyond its idle size (``query_worker_memory``)."""
    if settings.query_worker_memory:
        return settings.query_worker_memory
    if settings.query_memory_limit:
        return max(_MIN_ALLOWANCE, 4 * settings.query_memory_limit)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 4 * _MIN_ALLOWANCE
    return max(_MIN_ALLOWANCE, total // 4)


class _Worker:
    """The parent's handle on one worker process."""

    def __init__(self, proc: subprocess.Popen[bytes], sock: socket.socket, cap: int) -> None:
        self.proc = proc
        self.sock = sock
        self.cap = cap
        self.send_lock = threading.Lock()
        self.dead = False
        self.death: ArrowlogError | None = None
        # What this worker already holds, per stream.
        self.known_buffers: dict[str, set[int]] = {}
        self.known_segments: dict[str, Any] = {}
        # Lease state (under the pool's lock): open plans, and whether a thread talks to it.
        self.plans: set[int] = set()
        self.busy = False
        self.pending_drops: list[int] = []

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, kind: bytes, payload: bytes | pa.Buffer = b"") -> None:
        with self.send_lock:
            self._send_drops()
            fr.send(self.sock, kind, payload)

    def drop(self, request: int) -> None:
        """Tell the worker to forget a plan, now or with the next frame sent.

        Never waits: it runs from ``__del__``, which the garbage collector may call in a
        thread that is in the middle of sending a frame to this worker.
        """
        self.pending_drops.append(request)
        if self.send_lock.acquire(blocking=False):
            try:
                self._send_drops()
            finally:
                self.send_lock.release()

    def _send_drops(self) -> None:
        while self.pending_drops:
            fr.send(self.sock, fr.DROP, pickle.dumps(self.pending_drops.pop()))

    def cpu_seconds(self) -> float:
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / _TICK


class _Budget:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.left = timeout if timeout else float("inf")


class _Stopped(Exception):
    """The wait for a worker was given up (stop condition, time-out)."""


class QueryWorkers:
    """A pool of ``workers`` query processes over the streams ``tables`` hands out.

    Args:
        settings: the log's settings (storage, query guards, pool size, queue, memory).
        tables: the streams (names, shapes, snapshots).
        on_plan: told ``"schema"`` or ``"execute"`` for each plan a worker makes.
    """

    def __init__(
        self,
        settings: Settings,
        tables: StreamTables,
        *,
        on_plan: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self._tables = tables
        self._on_plan = on_plan or (lambda kind: None)
        self.size = settings.query_workers or 0
        self.queue = settings.query_queue
        self.timeout = settings.query_timeout or 0.0
        self.allowance = worker_allowance(settings)
        self._cond = threading.Condition()
        self._idle: list[_Worker] = []
        self._workers: set[_Worker] = set()
        self._waiting = 0
        self._closed = False
        self._ids = itertools.count(1)
        self._local = threading.local()
        for _ in range(self.size):
            self._spawn_later()

    # -- the pool --------------------------------------------------------------------------

    def _spawn_later(self) -> None:
        threading.Thread(target=self._spawn, name="arrowlog-query-spawn", daemon=True).start()

    def _spawn(self) -> None:
        while not self._closed:
            try:
                worker = self._start_worker()
            except Exception:
                logger.exception("could not start a query worker; retrying")
                time.sleep(_SPAWN_RETRY)
                continue
            with self._cond:
                if self._closed:
                    _kill(worker)
                    return
                self._workers.add(worker)
                self._idle.append(worker)
                self._cond.notify_all()
            logger.info(
                "query worker %d ready (address space cap %d bytes)", worker.pid, worker.cap
            )
            return

    def _start_worker(self) -> _Worker:
        parent, child = socket.socketpair()
        try:
            for s in (parent, child):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            proc = subprocess.Popen(
                [sys.executable, "-m", "arrowlog.sql.worker_main", str(child.fileno())],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        try:
            init = {
                "settings": self.settings,
                "allowance": self.allowance,
                "memory_limit": self.settings.query_memory_limit,
            }
            parent.settimeout(_START_TIMEOUT)
            fr.send(parent, fr.INIT, pickle.dumps(init))
            kind, payload = fr.recv(parent)
            parent.settimeout(None)
            if kind != fr.READY:
                raise RuntimeError(f"query worker answered {kind!r} instead of ready")
        except BaseException:
            proc.kill()
            proc.wait()
            parent.close()
            raise
        return _Worker(proc, parent, pickle.loads(payload)["cap"])

    def _acquire(self, stop: Callable[[], bool] | None) -> _Worker:
        """This thread's worker if it has plans open on it, else a free one (queued)."""
        while True:
            worker = self._take(stop)
            if worker.proc.poll() is None:
                return worker
            self._died(worker)  # died while idle: it is replaced, take another

    def _take(self, stop: Callable[[], bool] | None) -> _Worker:
        with self._cond:
            mine = getattr(self._local, "worker", None)
            if mine is not None and mine.plans and not mine.busy and not mine.dead:
                mine.busy = True
                return mine
            if not self._idle and self._waiting >= self.queue:
                raise Unavailable(
                    f"all {self.size} query workers are busy and the queue of {self.queue} "
                    "waiting queries is full (query_workers, query_queue): retry later"
                )
            self._waiting += 1
            deadline = time.monotonic() + self.timeout if self.timeout else None
            try:
                while not self._idle:
                    if self._closed:
                        raise Unavailable("the log is closed")
                    left = None if deadline is None else deadline - time.monotonic()
                    starting = len(self._workers) < self.size  # not busy: being (re)started
                    if left is not None and left <= 0 and not starting:
                        raise Unavailable(
                            f"no query worker became free within {self.timeout:g} s "
                            "(query_timeout): the server is busy, retry later"
                        )
                    if stop is not None and stop():
                        raise Unavailable("the query was cancelled while it waited for a worker")
                    wait = None if left is None else max(left, _POLL)
                    self._cond.wait(wait if stop is None else min(wait or _POLL, _POLL))
            finally:
                self._waiting -= 1
            worker = self._idle.pop()
            worker.busy = True
            self._local.worker = worker
            return worker

    def _done(self, worker: _Worker, plan: int | None = None) -> None:
        """The calling thread stops talking to ``worker``; ``plan`` is closed, if given."""
        with self._cond:
            if plan is not None:
                worker.plans.discard(plan)
            worker.busy = False
            self._return(worker)
            self._cond.notify_all()

    def _return(self, worker: _Worker) -> None:
        """Back to the idle list once nothing holds it (called under the lock)."""
        free = not worker.plans and not worker.busy and not worker.dead
        if free and worker in self._workers and worker not in self._idle:
            self._idle.append(worker)

    def _forget(self, worker: _Worker, plan: int) -> None:
        """A plan that never ran is closed (by a thread that does not talk to the worker)."""
        with self._cond:
            worker.plans.discard(plan)
            self._return(worker)
            self._cond.notify_all()

    def _died(self, worker: _Worker) -> ArrowlogError:
        """Take a dead (or killed) worker out of the pool, start another; the error to report."""
        with self._cond:
            first = not worker.dead
            worker.dead = True
            self._workers.discard(worker)
            if worker in self._idle:
                self._idle.remove(worker)
            self._cond.notify_all()
        if first:
            try:
                code = worker.proc.wait(5)
            except subprocess.TimeoutExpired:
                worker.proc.kill()
                code = worker.proc.wait()
            worker.sock.close()
            worker.death = self._death_error(code)
            logger.warning("query worker %d ended (%s): %s", worker.pid, code, worker.death)
            if not self._closed:
                self._spawn_later()
        # A second caller may get here before the first has read the exit status.
        return worker.death or Unavailable("the query worker running the query ended")

    def _death_error(self, code: int) -> ArrowlogError:
        if code == -signal.SIGABRT:
            return QueryLimitExceeded(self._memory_message())
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        return Unavailable(
            f"the worker process running the query ended ({how}) and was replaced; the "
            "query did not complete (if it was killed for memory, see query_memory_limit "
            "and query_worker_memory)"
        )

    def _memory_message(self, detail: str = "") -> str:
        pool = self.settings.query_memory_limit
        return (
            f"the query ran out of memory and was stopped: a query may allocate "
            f"{self.allowance} bytes in all (query_worker_memory)"
            + (f", {pool} of them in sorts, joins and aggregations" if pool else "")
            + " (query_memory_limit); narrow the query (a time range, a LIMIT, fewer or "
            f"smaller values){': ' + detail if detail else ''}"
        )

    def close(self) -> None:
        """Stop every worker (queries still running end with an error)."""
        with self._cond:
            self._closed = True
            workers = list(self._workers)
            self._workers.clear()
            self._idle.clear()
            self._cond.notify_all()
        for worker in workers:
            worker.dead = True
            worker.death = Unavailable("the log is closed")
            _kill(worker)

    # -- queries ---------------------------------------------------------------------------

    def sql(self, query: str, *, engine: str, params: Params = None) -> QueryResult:
        """Plan ``query`` in a worker; the result streams from it when iterated."""
        worker, request, schema, budget, stop = self._plan(query, engine, params, "execute")
        return _WorkerResult(self, worker, request, schema, budget).stop_when(stop)

    def schema(self, query: str, *, engine: str, params: Params = None) -> pa.Schema:
        """The result schema of ``query``, planned in a worker without data (no snapshot)."""
        worker, request, schema, _budget, _stop = self._plan(query, engine, params, "schema")
        self._forget(worker, request)  # the worker kept no plan
        return schema

    def _plan(
        self, query: str, engine: str, params: Params, mode: str
    ) -> tuple[_Worker, int, pa.Schema, _Budget, Callable[[], bool] | None]:
        if self._closed:
            raise Unavailable("the log is closed")
        stop = planning_stop.get()
        # Encoded before a worker is taken: a parameter that cannot be sent costs none.
        bound = fr.encode_params(params)
        worker = self._acquire(stop)
        request = next(self._ids)
        budget = _Budget(self.timeout)
        with self._cond:
            worker.plans.add(request)
        try:
            plan = fr.plan_bytes(request, query, engine, bound, self._tables.names(), mode)
            self._send(worker, fr.PLAN, plan)
            _kind, payload = self._wait(worker, budget, stop, (fr.PLANNED,))
            _request, schema = pickle.loads(payload)
        except _Stopped as e:
            self._abandon(worker, request)
            raise e.args[0] from None
        except ArrowlogError:  # the worker's answer, or its death: it is idle (or gone)
            self._done(worker, request)
            raise
        except BaseException:  # a failure here: the worker may be waiting for us
            self._abandon(worker, request)
            raise
        self._done(worker)
        return worker, request, schema, budget, stop

    def _send(self, worker: _Worker, kind: bytes, payload: bytes) -> None:
        try:
            worker.send(kind, payload)
        except OSError:  # it died since it was last used
            raise self._died(worker) from None

    def _wait(
        self,
        worker: _Worker,
        budget: _Budget,
        stop: Callable[[], bool] | None,
        final: tuple[bytes, ...],
    ) -> tuple[bytes, pa.Buffer]:
        """The worker's next data or final frame, answering its snapshot requests.

        Raises the query's error (ERROR frame), the worker's death, or ``_Stopped`` holding
        the error for a time-out or stop condition (the caller cancels the worker).
        """
        if worker.dead:
            raise worker.death or Unavailable("the query worker is gone")
        while True:
            started = time.monotonic()
            try:
                ready = _readable(worker.sock, min(_POLL, budget.left))
            except (OSError, ValueError):
                ready = True  # closed under us: recv says so
            budget.left -= time.monotonic() - started
            if not ready:
                if budget.left <= 0:
                    raise _Stopped(
                        QueryLimitExceeded(
                            f"query exceeded the time limit of {budget.timeout:g} s (query_timeout)"
                        )
                    )
                if stop is not None and stop():
                    raise _Stopped(Unavailable("the query was cancelled"))
                continue
            try:
                kind, payload = fr.recv(worker.sock)
            except (EOFError, OSError):
                raise self._died(worker) from None
            if kind == fr.RESOLVE:
                try:
                    self._answer(worker, *pickle.loads(payload))
                except OSError:
                    raise self._died(worker) from None
            elif kind == fr.PLANNING:
                self._on_plan(pickle.loads(payload))
            elif kind == fr.ERROR:
                _request, what, message = pickle.loads(payload)
                raise self._error(what, message)
            elif kind in final or kind in (fr.BATCH, fr.BATCH_STREAM):
                return kind, payload
            else:
                raise RuntimeError(f"unexpected frame {kind!r} from query worker {worker.pid}")

    def _error(self, what: str, message: str) -> ArrowlogError:
        if what == "memory":
            return QueryLimitExceeded(self._memory_message(message))
        if what == "cancelled":
            return Unavailable(message)
        if what == "internal":
            logger.error("query worker failed unexpectedly:\n%s", message)
            return ArrowlogError("the query failed unexpectedly (the server log has the details)")
        cls = getattr(errors, what, None)
        if isinstance(cls, type) and issubclass(cls, ArrowlogError):
            return cls(message)
        return InvalidInput(message)

    def _answer(self, worker: _Worker, ask: int, kind: str, name: str) -> None:
        """Send the worker the shape or snapshot of ``name`` (None if there is no such stream)."""
        if kind == "shape":
            try:
                shape = self._tables.shape(name)
            except ArrowlogError:
                shape = None
            worker.send(fr.SNAPSHOT, pickle.dumps((ask, shape and {"shape": shape, "new": 0})))
            return
        try:
            snap = self._tables.snapshot(name)
        except ArrowlogError:
            snap = None
        if snap is None:
            worker.send(fr.SNAPSHOT, pickle.dumps((ask, None)))
            return
        known = worker.known_buffers.get(snap.name, set())
        new = [(i, t) for i, t in zip(snap.buffer_ids, snap.buffer, strict=True) if i not in known]
        same = snap.segments_key is not None and worker.known_segments.get(snap.name) == (
            snap.segments_key
        )
        meta = {
            "name": snap.name,
            "schema": snap.schema,
            "time_column": snap.time_column,
            "segments": None if same else snap.segments,
            "segments_key": snap.segments_key,
            "buffer_ids": list(snap.buffer_ids),
            "new_ids": [i for i, _ in new],
            "new": len(new),
        }
        payloads = [fr.table_bytes(t) for _, t in new]
        with worker.send_lock:
            fr.send(worker.sock, fr.SNAPSHOT, pickle.dumps((ask, meta)))
            for payload in payloads:
                fr.send(worker.sock, fr.TABLE, payload)
        worker.known_buffers[snap.name] = set(snap.buffer_ids)
        worker.known_segments[snap.name] = snap.segments_key

    def _abandon(self, worker: _Worker, request: int) -> None:
        """Cancel ``request`` and get the worker back to idle (or replaced) in the background."""
        if worker.dead:
            self._done(worker, request)
            return
        # What the worker got of a snapshot sent just now is not sure: send all again.
        worker.known_buffers.clear()
        worker.known_segments.clear()
        try:
            worker.send(fr.CANCEL, pickle.dumps(request))
        except OSError:
            self._died(worker)
            self._done(worker, request)
            return
        threading.Thread(
            target=self._drain, args=(worker, request), name="arrowlog-query-drain", daemon=True
        ).start()

    def _drain(self, worker: _Worker, request: int) -> None:
        deadline = time.monotonic() + _CANCEL_GRACE
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not _readable(worker.sock, left):
                    logger.warning(
                        "query worker %d did not stop within %.1f s of a cancel; killing it",
                        worker.pid,
                        _CANCEL_GRACE,
                    )
                    _kill(worker)
                    self._died(worker)
                    return
                kind, payload = fr.recv(worker.sock)
                if kind == fr.RESOLVE:
                    ask, _kind, _name = pickle.loads(payload)
                    worker.send(fr.SNAPSHOT, pickle.dumps((ask, None)))
                elif kind == fr.PLANNED:
                    worker.send(fr.DROP, pickle.dumps(request))
                    break
                elif kind in (fr.END, fr.ERROR):
                    break
            before = worker.cpu_seconds()
            time.sleep(_IDLE_CHECK)
            used = worker.cpu_seconds() - before
            if used > _IDLE_CPU:
                logger.warning(
                    "query worker %d still used %.2f s of CPU after its query was cancelled; "
                    "killing it",
                    worker.pid,
                    used,
                )
                _kill(worker)
                self._died(worker)
        except (EOFError, OSError):
            self._died(worker)
        except Exception:
            logger.exception("draining query worker %d failed; killing it", worker.pid)
            _kill(worker)
            self._died(worker)
        finally:
            self._done(worker, request)


class _WorkerResult(QueryResult):
    """A result planned in a worker; iterating it runs the plan there, batch by batch."""

    def __init__(
        self,
        pool: QueryWorkers,
        worker: _Worker,
        request: int,
        schema: pa.Schema,
        budget: _Budget,
    ) -> None:
        me = weakref.ref(self)  # not a bound method: the result must not hold itself

        def batches() -> Iterator[pa.RecordBatch]:
            result = me()
            if result is None:
                raise InvalidInput("the query result is gone")
            return result._run()

        super().__init__(schema, batches)
        self._pool = pool
        self._worker = worker
        self._request = request
        self._budget = budget
        self._state = "planned"  # -> running -> finished
        self._stop: Callable[[], bool] | None = None
        self._closing = False
        self._lock = threading.Lock()

    def stop_when(self, condition: Callable[[], bool] | None) -> QueryResult:
        self._stop = condition
        return self

    def _stopped(self) -> bool:
        return self._closing or (self._stop is not None and self._stop())

    def _run(self) -> Iterator[pa.RecordBatch]:
        pool, worker = self._pool, self._worker
        with self._lock:
            if self._state != "planned":
                raise InvalidInput("a query result can be read once")
            self._state = "holding"
        with pool._cond:
            while worker.busy and not worker.dead:
                pool._cond.wait()
            worker.busy = True
        finished = False
        try:
            if worker.dead:
                raise worker.death or Unavailable("the query worker is gone")
            pool._send(worker, fr.RUN, pickle.dumps(self._request))
            while True:
                with self._lock:
                    if self._state == "closed":
                        raise Unavailable("the query was cancelled")
                    self._state = "reading"
                try:
                    kind, payload = pool._wait(worker, self._budget, self._stopped, (fr.END,))
                finally:
                    with self._lock:
                        self._state = "holding"
                if kind == fr.END:
                    finished = True
                    return
                yield fr.read_batch(kind, payload, self.schema)
        except _Stopped as e:
            raise e.args[0] from None
        except ArrowlogError:
            finished = True  # the worker's error frame, or its death: nothing to stop
            raise
        finally:
            with self._lock:
                closed = self._state == "closed"  # close() abandoned it already
                self._state = "finished"
            if not closed:
                if finished or worker.dead:
                    pool._done(worker, self._request)
                else:  # time-out, stop condition, or the consumer let go (GeneratorExit)
                    pool._abandon(worker, self._request)

    def close(self) -> None:
        """Stop the query: a run in progress is cancelled, a plan never run is dropped.

        Safe from any thread, also while another thread iterates the result.
        """
        with self._lock:
            state = self._state
            if state == "planned":
                self._state = "finished"
            elif state == "reading":
                self._closing = True  # the reader stops within _POLL seconds
            elif state == "holding":
                self._state = "closed"  # the consumer holds a batch: cancel from here
        if state == "planned":
            self._drop()
        elif state == "holding":
            self._pool._abandon(self._worker, self._request)

    def _drop(self) -> None:
        worker = self._worker
        if not worker.dead:
            with contextlib.suppress(OSError):
                worker.drop(self._request)
        self._pool._forget(worker, self._request)

    def __del__(self) -> None:
        try:
            if self._state == "planned":
                self._state = "finished"
                self._drop()
        except Exception:
            pass


def _readable(sock: socket.socket, timeout: float) -> bool:
    ready, _, _ = select.select([sock], [], [], max(0.0, timeout))
    return bool(ready)


def _kill(worker: _Worker) -> None:
    with contextlib.suppress(OSError):
        worker.proc.kill()
