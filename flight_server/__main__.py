"""``python -m flight_server``: serve one data directory over Arrow Flight until signalled.

    python -m flight_server --data-dir ./data --host 127.0.0.1 --port 8815 [--token T]
        [--tls-cert cert.pem --tls-key key.pem]

Prints exactly one line to stdout once the server accepts calls,
``flight listening on grpc://HOST:PORT`` (``grpc+tls://`` with TLS; the actual port when
``--port 0``), then logs to stderr. On SIGTERM or SIGINT it stops accepting, ends tails
and running results, closes the log (which flushes every buffer) and exits 0. The token
may also come from ``ARROWLOG_TOKEN``; this entry point is the edge that reads it.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

import arrowlog
from arrowlog.errors import ArrowlogError
from flight_server.server import DEFAULT_BATCH_ROWS, serve

logger = logging.getLogger("flight_server")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m flight_server", description="Serve an arrowlog directory over Arrow Flight."
    )
    parser.add_argument("--data-dir", default=None, help="the data directory (default: settings)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument("--port", type=int, default=8815, help="port; 0 picks a free one")
    parser.add_argument(
        "--token",
        default=os.environ.get("ARROWLOG_TOKEN") or None,
        help="require this bearer token (default: $ARROWLOG_TOKEN)",
    )
    parser.add_argument("--tls-cert", default=None, help="PEM certificate: serve TLS")
    parser.add_argument("--tls-key", default=None, help="PEM private key for --tls-cert")
    parser.add_argument(
        "--batch-rows",
        type=int,
        default=DEFAULT_BATCH_ROWS,
        help="rows per Flight message when streaming results (coalesced)",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (stderr)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        _parser().error("--tls-cert and --tls-key go together")
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        logger.info("received %s: shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        log = arrowlog.open(args.data_dir)
    except ArrowlogError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    try:
        try:
            server = serve(
                log,
                host=args.host,
                port=args.port,
                token=args.token,
                tls_cert=args.tls_cert,
                tls_key=args.tls_key,
                batch_rows=args.batch_rows,
            )
        except ArrowlogError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(f"flight listening on {server.url}", flush=True)
        while not stop.wait(1.0):
            pass
        server.shutdown()
        logger.info("server stopped; closing the log")
    finally:
        log.close()  # flushes every buffer
    logger.info("closed cleanly")
    return 0


if __name__ == "__main__":
    sys.exit(main())
