"""A query worker process: runs one query at a time for ``arrowlog.sql.workers.QueryWorkers``.

Started as ``python -m arrowlog.sql.worker_main FD`` with one end of a socket pair as FD.
Untrusted SQL runs here, not in the server: an allocation the memory pool does not see
(Rust aborts the process when one fails), a crash of the engine, or work that will not
stop takes only this process with it, and the parent replaces it.

The process has two threads:

- the **main thread** plans and runs queries. DataFusion's Python bindings turn a SIGINT
  into ``KeyboardInterrupt`` only in the main thread (the wait for a batch polls
  ``PyErr_CheckSignals``), and dropping the interrupted future stops the engine's work;
  DuckDB's bindings do the same while a query executes. Both were measured to leave no
  CPU in use after the interrupt (datafusion 55, duckdb 1.x/2.x).
- the **reader thread** reads every frame from the parent. A cancel is handled at once:
  if the query it names is running, the main thread gets a SIGINT (``pthread_kill``); every
  other frame is queued for the main thread. EOF (the parent is gone) ends the process.

The main thread is interruptible only inside the engine (``_interruptible``), never
while it writes a frame, so a frame is always whole. The frames are ``framing.py``'s.

What the engine needs of a stream (its shape while planning, its snapshot for an
execution) it asks the parent for; it keeps each stream's buffered tables and last
segment list, so only what changed crosses.

Memory: after warming up (imports, one tiny query per engine) the worker caps its address
space at its size then plus the allowance it was given (``RLIMIT_AS``). An allocation over
the cap fails: pyarrow raises ``MemoryError`` (answered as a memory error), Rust aborts the
process (the parent sees SIGABRT and answers the same).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import queue
import resource
import signal
import socket
import sys
import threading
import traceback
from typing import Any

import pyarrow as pa

from arrowlog.errors import ArrowlogError
from arrowlog.snapshot import TableSnapshot
from arrowlog.sql import framing as fr
from arrowlog.sql.catalog import StreamTables, TableShape
from arrowlog.sql.engine import LocalEngine
from arrowlog.sql.limits import Limits
from arrowlog.storage import Storage

logger = logging.getLogger("arrowlog.query_worker")


class _Worker:
    def __init__(self, sock: socket.socket, init: dict[str, Any]) -> None:
        self.sock = sock
        self.settings = init["settings"]
        self.storage = Storage.from_settings(self.settings)
        self.inbox: queue.SimpleQueue[tuple[bytes, Any]] = queue.SimpleQueue()
        self.current: int | None = None  # the request the main thread works on
        self.cancelled: int | None = None  # the last request the parent cancelled
        self.interruptible = False
        self.main_ident = threading.get_ident()
        self.plans: dict[int, Any] = {}
        self.names: list[str] = []
        self.resolves = 0
        # Per stream: the buffered tables by WAL sequence number, and the last segment list.
        self.buffers: dict[str, dict[int, pa.Table]] = {}
        self.segments: dict[str, tuple[Any, list[Any]]] = {}
        tables = StreamTables(
            names=lambda: self.names,
            shape=lambda name: self._resolve("shape", name),
            snapshot=lambda name: self._resolve("snapshot", name),
        )
        self.engine = LocalEngine(
            tables,
            Limits(memory_limit=init["memory_limit"]),
            on_plan=self._planning,
            on_duckdb=self._opened,
        )
        # The DuckDB connection of each plan: interrupt() stops DuckDB wherever it is (its
        # own check of Python's signals does not cover every phase of a query).
        self.connections: dict[int, Any] = {}

    # -- the reader thread -----------------------------------------------------------------

    def read_forever(self) -> None:
        try:
            while True:
                kind, payload = fr.recv(self.sock)
                if kind == fr.CANCEL:
                    request = pickle.loads(payload)
                    self.cancelled = request
                    if self.current == request and self.interruptible:
                        signal.pthread_kill(self.main_ident, signal.SIGINT)
                    con = self.connections.get(request)
                    if con is not None:
                        with contextlib.suppress(Exception):  # closed meanwhile
                            con.interrupt()
                    continue
                self.inbox.put((kind, payload))
        except (EOFError, OSError):
            pass
        os._exit(0)  # the parent is gone: nothing left to do

    def _opened(self, con: Any) -> None:
        if self.current is not None:
            self.connections[self.current] = con

    def on_sigint(self, _signum: int, _frame: object) -> None:
        if self.interruptible and self.current is not None and self.current == self.cancelled:
            raise KeyboardInterrupt

    def _interruptible(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self.interruptible = True
        try:
            if self.cancelled == self.current:
                raise KeyboardInterrupt
            return fn(*args, **kwargs)
        finally:
            self.interruptible = False

    # -- the main thread -------------------------------------------------------------------

    def serve(self) -> None:
        while True:
            kind, payload = self.inbox.get()
            if kind == fr.PLAN:
                self._plan(*fr.read_plan(payload))
            elif kind == fr.RUN:
                self._run(pickle.loads(payload))
            elif kind == fr.DROP:
                request = pickle.loads(payload)
                self.plans.pop(request, None)
                self.connections.pop(request, None)
            # a stale snapshot (its query was interrupted while waiting for it) is dropped

    def _plan(
        self, request: int, query: str, engine: str, params: Any, names: list[str], mode: str
    ) -> None:
        self.names = names
        self.current = request
        try:
            if mode == "schema":
                schema = self._interruptible(
                    self.engine.schema, query, engine=engine, params=params
                )
                self.connections.pop(request, None)
            else:
                result = self._interruptible(self.engine.sql, query, engine=engine, params=params)
                self.plans[request] = result
                schema = result.schema
            outcome = (fr.PLANNED, pickle.dumps((request, schema)))
        except BaseException as e:
            outcome = self._failure(request, e)
            self.connections.pop(request, None)
        self.current = None
        fr.send(self.sock, *outcome)

    def _run(self, request: int) -> None:
        self.current = request
        try:
            result = self.plans.pop(request)
            batches = iter(result)
            while True:
                batch = self._interruptible(next, batches, None)
                if batch is None:
                    break
                fr.send_batch(self.sock, batch)
            del batches, result
            outcome = (fr.END, pickle.dumps(request))
        except BaseException as e:
            outcome = self._failure(request, e)
        self.connections.pop(request, None)
        self.current = None
        fr.send(self.sock, *outcome)

    def _failure(self, request: int, e: BaseException) -> tuple[bytes, bytes]:
        if self.cancelled == request:
            # Whatever surfaced (KeyboardInterrupt, or the engine's wrapping of it).
            error = ("cancelled", "the query was cancelled")
        elif isinstance(e, KeyboardInterrupt):
            error = ("cancelled", "the query was interrupted")
        elif isinstance(e, MemoryError | pa.ArrowMemoryError):
            error = ("memory", str(e))
        elif isinstance(e, ArrowlogError):
            error = (type(e).__name__, str(e))
        else:
            error = ("internal", "".join(traceback.format_exception(e)))
        return fr.ERROR, pickle.dumps((request, *error))

    def _planning(self, kind: str) -> None:
        """Tell the parent a plan is being made (``arrowlog_query_plans_total``)."""
        interruptible, self.interruptible = self.interruptible, False  # a frame goes whole
        try:
            fr.send(self.sock, fr.PLANNING, pickle.dumps(kind))
        finally:
            self.interruptible = interruptible
        if interruptible and self.cancelled == self.current:
            raise KeyboardInterrupt

    def _resolve(self, kind: str, name: str) -> Any:
        """The parent's shape or snapshot of stream ``name`` (a snapshot rebuilt here with
        the cached parts)."""
        self.resolves += 1
        ask = self.resolves
        # Not interrupted while the answer arrives: the cache must take all of it or none.
        interruptible, self.interruptible = self.interruptible, False
        try:
            fr.send(self.sock, fr.RESOLVE, pickle.dumps((ask, kind, name)))
            while True:
                frame, payload = self.inbox.get()
                if frame == fr.DROP:  # another plan of this worker's holder was let go
                    self.plans.pop(pickle.loads(payload), None)
                    continue
                if frame != fr.SNAPSHOT:
                    raise RuntimeError(f"expected a snapshot, got frame {frame!r}")
                answer, meta = pickle.loads(payload)
                new = meta["new"] if meta else 0
                tables = [fr.read_table(self.inbox.get()[1]) for _ in range(new)]
                if answer == ask:
                    break
            if meta is not None and "shape" not in meta:
                stream = meta["name"]
                cached = self.buffers.get(stream, {})
                fresh = dict(zip(meta["new_ids"], tables, strict=True))
                missing = [i for i in meta["buffer_ids"] if i not in fresh and i not in cached]
                if missing:
                    raise RuntimeError(f"buffered tables {missing} of {stream!r} were never sent")
                self.buffers[stream] = {i: fresh.get(i, cached.get(i)) for i in meta["buffer_ids"]}
        finally:
            self.interruptible = interruptible
        if interruptible and self.cancelled == self.current:
            raise KeyboardInterrupt
        if meta is None:
            return None
        if "shape" in meta:
            shape: TableShape = meta["shape"]
            return shape
        buffer = self.buffers[stream]
        if meta["segments"] is not None:
            self.segments[stream] = (meta["segments_key"], meta["segments"])
        return TableSnapshot(
            name=stream,
            schema=meta["schema"],
            time_column=meta["time_column"],
            segments=self.segments[stream][1],
            buffer=list(buffer.values()),
            segments_key=meta["segments_key"],
            storage=self.storage,
            buffer_ids=tuple(meta["buffer_ids"]),
        )


def _warm_up() -> None:
    """Import and touch both engines, so their one-time allocations precede the cap."""
    import duckdb
    from datafusion import SessionContext

    SessionContext().sql("SELECT 1").collect()
    con = duckdb.connect(":memory:")
    con.sql("SELECT 1").fetchall()
    con.close()


def _address_space() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="query worker %(process)d: %(message)s")
    sock = socket.socket(fileno=int(sys.argv[1]))
    kind, payload = fr.recv(sock)
    if kind != fr.INIT:
        raise SystemExit(f"expected an init frame, got {kind!r}")
    init = pickle.loads(payload)
    _warm_up()
    worker = _Worker(sock, init)
    signal.signal(signal.SIGINT, worker.on_sigint)
    cap = 0
    if init["allowance"]:
        cap = _address_space() + init["allowance"]
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    threading.Thread(target=worker.read_forever, name="reader", daemon=True).start()
    fr.send(sock, fr.READY, pickle.dumps({"pid": os.getpid(), "cap": cap}))
    worker.serve()


if __name__ == "__main__":
    main()
