"""``arrowlog serve``: Flight and HTTP over one shared ``Log``, in one process.

``ArrowlogServer`` opens the log and starts both listeners (``start``), and stops them in
the order that keeps every acknowledged write (``stop``)::

    start: open the Log (it starts its query workers) → bind the HTTP socket
           → Flight serving → uvicorn accepting
    stop:  both stop accepting; HTTP tails end; in-flight requests finish (up to
           shutdown_timeout)
           → Flight shut down → Log closed (query workers stopped, every buffer
           flushed) → return

SQL from clients runs in worker processes (``query_workers``, 2 unless set; see
``arrowlog/sql/workers.py``) and stops after ``query_timeout`` (300 s unless set):
``serve_settings`` fills in those defaults, which an embedded ``arrowlog.open()`` does not
use.

uvicorn runs in a thread of its own, not the main one, so it installs no signal handlers
(its own would re-raise the signal once it has shut down, and the process would die by
SIGTERM instead of exiting 0). ``run`` owns the signals: SIGTERM or SIGINT starts the
graceful stop; a second one makes uvicorn drop the connections still open.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import signal
import socket
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn

from arrowlog.config import Settings
from arrowlog.errors import Unavailable
from arrowlog.http import create_app
from arrowlog.http.protocol import protocol_class
from arrowlog.log import Log

if TYPE_CHECKING:
    from fastapi import FastAPI

    from flight_server.server import ArrowlogFlightServer

__all__ = ["ArrowlogServer", "run", "serve_settings"]

logger = logging.getLogger(__name__)

_STARTUP_SECONDS = 30.0  # uvicorn binds nothing (the socket is ours): startup is quick

# A server runs other people's SQL: in worker processes, and not forever (README, Settings).
SERVE_QUERY_WORKERS = 2
SERVE_QUERY_TIMEOUT = 300.0


def serve_settings(settings: Settings) -> Settings:
    """``settings`` with the server's defaults for the query settings left unset."""
    changes: dict[str, object] = {}
    if settings.query_workers is None:
        changes["query_workers"] = SERVE_QUERY_WORKERS
    if settings.query_timeout is None:
        changes["query_timeout"] = SERVE_QUERY_TIMEOUT
    return dataclasses.replace(settings, **changes) if changes else settings


class ArrowlogServer:
    """Flight and HTTP servers over one Log opened from ``settings``.

    Args:
        settings: data directory, host, ports (0 picks free ones), token, TLS, limits.
        access_log: log every HTTP request at INFO (``uvicorn.access``).

    Example::

        server = ArrowlogServer(Settings.load(http_port=0, flight_port=0))
        server.start(); print(server.http_url, server.flight_url); server.stop()
    """

    def __init__(self, settings: Settings, *, access_log: bool = False) -> None:
        self.settings = serve_settings(settings)
        self._access_log = access_log
        self.log: Log | None = None
        self._flight: ArrowlogFlightServer | None = None
        self._http: _Uvicorn | None = None
        self._app: FastAPI | None = None
        self._http_thread: threading.Thread | None = None
        self._http_port = 0

    @property
    def flight_url(self) -> str:
        assert self._flight is not None, "not started"
        return self._flight.url

    @property
    def http_url(self) -> str:
        scheme = "https" if self.settings.tls_cert else "http"
        host = self.settings.host
        return f"{scheme}://{f'[{host}]' if ':' in host else host}:{self._http_port}"

    def start(self) -> None:
        """Open the log and start both servers; returns once both accept connections.

        Raises:
            Unavailable: a port is taken, or the data directory is used by another process.
            StorageError: the log could not be opened.
        """
        from flight_server.server import (
            serve as serve_flight,  # the Flight server builds on the Log
        )

        st = self.settings
        self.log = Log(st)
        sock: socket.socket | None = None
        try:
            sock = _bind(st.host, st.http_port)  # before Flight: a taken port fails fast
            self._http_port = sock.getsockname()[1]
            self._flight = serve_flight(
                self.log,
                host=st.host,
                port=st.flight_port,
                token=st.token,
                tls_cert=st.tls_cert,
                tls_key=st.tls_key,
            )
            self._start_http(sock)
        except BaseException:
            if sock is not None and self._http is None:
                sock.close()  # uvicorn never took it over
            self.stop()
            raise
        if self.log.cluster is not None:
            # Other nodes redirect writes for our shards here, and clients fetch from here.
            public = st.advertise_host or st.host
            self.log.cluster.advertise(
                flight=self.flight_url.replace(f"//{st.host}:", f"//{public}:", 1),
                http=self.http_url.replace(f"//{st.host}:", f"//{public}:", 1),
            )
        logger.info("serving %s: flight %s, http %s", st.data_dir, self.flight_url, self.http_url)

    def _start_http(self, sock: socket.socket) -> None:
        st = self.settings
        self._app = create_app(self._log_or_fail(), st)
        config = uvicorn.Config(
            self._app,
            # uvicorn's httptools protocol, plus limits on the time and size of request
            # heads (the body's are in arrowlog.http.limits): docs/reliability.md.
            http=protocol_class(st),
            lifespan="off",
            log_config=None,  # keep the CLI's logging setup
            access_log=self._access_log,
            server_header=False,
            timeout_graceful_shutdown=math.ceil(st.shutdown_timeout),
            ssl_certfile=str(st.tls_cert) if st.tls_cert else None,
            ssl_keyfile=str(st.tls_key) if st.tls_key else None,
        )
        self._http = _Uvicorn(config)
        self._http_thread = threading.Thread(
            target=self._http.run, kwargs={"sockets": [sock]}, name="arrowlog-http"
        )
        self._http_thread.start()
        if not self._http.ready.wait(_STARTUP_SECONDS) or not self._http.started:
            raise Unavailable(f"the HTTP server did not start on {self.http_url}")

    def _log_or_fail(self) -> Log:
        assert self.log is not None
        return self.log

    @property
    def running(self) -> bool:
        """False once the HTTP server's thread has ended (stopped, or failed)."""
        return self._http_thread is not None and self._http_thread.is_alive()

    def stop(self) -> None:
        """Stop accepting, let in-flight requests finish, shut Flight down, close the log.

        Safe to call more than once, and after a failed ``start``.
        """
        if self._http is not None:
            self._http.should_exit = True  # uvicorn stops accepting, then drains
        if self._app is not None:
            # A tail never ends by itself: without this, draining would wait it out.
            self._app.state.tails.close()
        flight_stopped = threading.Event()
        if self._flight is not None:
            threading.Thread(
                target=_shutdown_flight,
                args=(self._flight, flight_stopped),
                name="arrowlog-flight-shutdown",
                daemon=True,
            ).start()
        else:
            flight_stopped.set()
        if self._http_thread is not None:
            self._http_thread.join()
        if not flight_stopped.wait(self.settings.shutdown_timeout):
            # Closing the log ends the calls still running (tails see it closed).
            logger.warning(
                "Flight calls still running after %.0f s; closing the log under them",
                self.settings.shutdown_timeout,
            )
        if self.log is not None:
            self.log.close()  # flushes every buffer (serve flushes on SIGTERM)
            logger.info("closed %s", self.log.path)
        self._flight = self._http = self._http_thread = self._app = None

    def force_stop(self) -> None:
        """Drop open HTTP connections instead of waiting for them (a second signal)."""
        if self._http is not None:
            self._http.force_exit = True


def _shutdown_flight(flight: ArrowlogFlightServer, done: threading.Event) -> None:
    # In a thread of its own: it waits for running calls, which the stop() may cut short.
    try:
        flight.shutdown()
    finally:
        done.set()


class _Uvicorn(uvicorn.Server):
    """uvicorn's server, telling another thread when it accepts connections."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.ready.set()


def _bind(host: str, port: int) -> socket.socket:
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family)
    except OSError as e:
        raise Unavailable(f"cannot listen for HTTP on {host}:{port}: {e}") from e


def run(
    settings: Settings,
    *,
    ready: Callable[[ArrowlogServer], None],
    access_log: bool = False,
) -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully and return (exit code 0).

    Args:
        settings: the server's settings.
        ready: called once both servers accept connections (the CLI prints the addresses).
        access_log: log every HTTP request.

    Raises:
        ArrowlogError: the servers could not start (nothing is left running).
    """
    stop = threading.Event()
    server = ArrowlogServer(settings, access_log=access_log)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            logger.warning("%s again: dropping open connections", signal.Signals(signum).name)
            server.force_stop()
            return
        logger.info("%s: stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.start()
        try:
            ready(server)
            # Wake up now and then: if uvicorn's thread died, there is nothing to serve.
            while not stop.wait(1.0) and server.running:
                pass
            if not stop.is_set():
                logger.error("the HTTP server stopped unexpectedly; shutting down")
        finally:
            server.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
