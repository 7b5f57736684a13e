"""The one mapping from arrowlog's errors to Flight (gRPC) status codes.

Every RPC handler of :class:`flight_server.server.ArrowlogFlightServer` is decorated with
:func:`map_errors` (the auth middleware calls :func:`to_flight_error`), so no handler maps
an error itself. The most
specific class wins (the exception's MRO is walked, as in httpx's ``map_exceptions``)::

    ArrowlogError              INTERNAL            (an arrowlog error without a closer entry)
    ├── InvalidInput           INVALID_ARGUMENT    (bad type, schema conflict, bad SQL, ...)
    │   ├── BatchTooLarge      INVALID_ARGUMENT
    │   ├── ReadOnlyQuery      PERMISSION_DENIED   (DDL/DML/COPY, updates, replace)
    │   └── QueryLimitExceeded INVALID_ARGUMENT    (query_timeout, query_memory_limit)
    ├── StreamNotFound         NOT_FOUND
    ├── Unauthenticated        UNAUTHENTICATED
    ├── Unavailable            UNAVAILABLE         (shutting down, closed, overloaded)
    └── StorageError           INTERNAL            (with the storage layer's message)
    NotImplementedError        UNIMPLEMENTED       (transactions, Substrait, unknown actions)
    pyarrow.flight.FlightError passed through unchanged (e.g. CANCELLED)
    anything else              INTERNAL, generic message; the traceback goes to the log

How pyarrow turns a Python exception into a gRPC status (pyarrow 26, measured in
``tests/integration/test_flight_plain.py``): only the ``FlightError`` subclasses choose a
code directly, and pyarrow offers none for INVALID_ARGUMENT, NOT_FOUND or
RESOURCE_EXHAUSTED. Any other exception becomes an Arrow status by its Python type:
``ValueError`` → Invalid → INVALID_ARGUMENT, ``KeyError`` → KeyError → NOT_FOUND,
``NotImplementedError`` → UNIMPLEMENTED, the rest UNKNOWN (``MemoryError`` included, so
RESOURCE_EXHAUSTED cannot be sent: overload is answered UNAVAILABLE, which clients retry).
On the wire the status message is the exception's message, unchanged, followed by
``". Detail: "`` and the status detail's text: for a ``FlightError`` the code's name
(``Unauthorized``) and ``extra_info`` in its own field; for any other exception
``"Python exception: "`` and what ``traceback.format_exception(type, value, tb)`` gives,
which is the handler's whole traceback with the server's file paths (Arrow C++
``PythonErrorDetail::ToString``, which looks the function up on every call). The three
classes raised for those codes (:class:`InvalidArgument`, :class:`NotFound`,
:class:`Unimplemented`) are each a :class:`CleanDetail`: this module wraps
``traceback.format_exception`` so that for a ``CleanDetail``, and nothing else, it gives
only the name of arrowlog's class (``... Detail: Python exception: StreamNotFound``).
Clients get the message and that name; the traceback, when there is one worth having (an
unexpected error), goes to the server log only, at ERROR. pyarrow clients see
``ArrowInvalid`` / ``ArrowKeyError`` / ``FlightUnauthorizedError`` ...; ``arrowlog.Client``
strips the detail and raises exactly arrowlog's class again: the ``FlightError`` codes carry
its name (and attributes, e.g. ``NotShardOwner.owner``) in ``extra_info``, the others in the
detail (``arrowlog/wire_errors.py`` has the format). Neither changes a code or a message.
"""

from __future__ import annotations

import functools
import inspect
import logging
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import pyarrow.flight as flight

from arrowlog import wire_errors
from arrowlog.errors import (
    ArrowlogError,
    InvalidInput,
    ReadOnlyQuery,
    StorageError,
    StreamNotFound,
    Unauthenticated,
    Unavailable,
)

__all__ = [
    "GENERIC_INTERNAL_MESSAGE",
    "CleanDetail",
    "InvalidArgument",
    "NotFound",
    "Unimplemented",
    "map_errors",
    "to_flight_error",
]

logger = logging.getLogger(__name__)

GENERIC_INTERNAL_MESSAGE = "internal server error (the server log has the details)"


class CleanDetail(Exception):
    """An error sent to clients with its message and arrowlog's class name, no traceback.

    ``arrowlog_error`` is the name sent as the status detail (see the module docstring).
    """

    arrowlog_error = ""

    def clean_detail(self) -> str:
        return self.arrowlog_error or type(self).__name__


class InvalidArgument(CleanDetail, ValueError):
    """Sent as INVALID_ARGUMENT (pyarrow maps ``ValueError`` to Arrow's Invalid status)."""


class NotFound(CleanDetail, KeyError):
    """Sent as NOT_FOUND (pyarrow maps ``KeyError`` to Arrow's KeyError status).

    ``str()`` is the message itself: a plain ``KeyError`` would quote it.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Unimplemented(CleanDetail, NotImplementedError):
    """Sent as UNIMPLEMENTED: ADBC falls back (e.g. to ad-hoc queries) on this code only."""


_format_exception = traceback.format_exception


def _format_exception_cleanly(*args: Any, **kwargs: Any) -> list[str]:
    """``traceback.format_exception``, but a :class:`CleanDetail` is only its class's name.

    Arrow C++ calls this (positionally: type, value, traceback) to render the status detail
    of an exception raised by a Flight handler; it must return a list and never fail.
    """
    value = args[1] if len(args) > 1 else kwargs.get("value", args[0] if args else None)
    if isinstance(value, CleanDetail):
        return [value.clean_detail()]
    return _format_exception(*args, **kwargs)


if not getattr(traceback.format_exception, "_arrowlog_clean", False):
    _format_exception_cleanly._arrowlog_clean = True  # type: ignore[attr-defined]
    traceback.format_exception = _format_exception_cleanly


def _flight(cls: type[flight.FlightError]) -> Callable[[BaseException], Exception]:
    def make(exc: BaseException) -> Exception:
        # extra_info names arrowlog's class, so that arrowlog.Client raises exactly that one.
        info = wire_errors.encode(exc) if isinstance(exc, ArrowlogError) else b""
        return cls(str(exc), info)

    return make


def _plain(cls: type[CleanDetail]) -> Callable[[BaseException], Exception]:
    def make(exc: BaseException) -> Exception:
        error = cls(str(exc))
        error.arrowlog_error = (
            wire_errors.name_of(exc) if isinstance(exc, ArrowlogError) else type(exc).__name__
        )
        return error

    return make


# to_flight_error walks the exception's MRO: the most specific entry wins.
_MAPPING: dict[type[BaseException], Callable[[BaseException], Exception]] = {
    ArrowlogError: _flight(flight.FlightInternalError),
    InvalidInput: _plain(InvalidArgument),
    ReadOnlyQuery: _flight(flight.FlightUnauthorizedError),
    StreamNotFound: _plain(NotFound),
    Unauthenticated: _flight(flight.FlightUnauthenticatedError),
    Unavailable: _flight(flight.FlightUnavailableError),
    StorageError: _flight(flight.FlightInternalError),
    NotImplementedError: _plain(Unimplemented),
}


def to_flight_error(exc: BaseException) -> Exception:
    """The exception to raise to the Flight runtime for ``exc`` (see the module docstring).

    Example: ``raise to_flight_error(StreamNotFound("stream 'x' not found")) from None``
    """
    if isinstance(exc, flight.FlightError):
        return exc  # already carries its status code (e.g. CANCELLED from a writer)
    for cls in type(exc).__mro__:
        make = _MAPPING.get(cls)
        if make is not None:
            return make(exc)
    return flight.FlightInternalError(GENERIC_INTERNAL_MESSAGE)


F = TypeVar("F", bound=Callable[..., Any])


def map_errors(fn: F) -> F:
    """Decorate an RPC handler (plain or generator function) with the one error mapping.

    Whatever escapes ``fn`` is logged and raised again as :func:`to_flight_error` says,
    ``from None`` (the engine's chain goes to the server log, never to the client, and the
    exception raised is one pyarrow sends without a traceback).
    For a generator function the mapping also covers the iteration, so an error in the
    middle of a streamed result reaches the client with its proper code.

    Example: ``@map_errors`` above ``def do_get(self, context, ticket): ...``
    """
    what = fn.__name__

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return (yield from fn(*args, **kwargs))
            except Exception as exc:  # GeneratorExit (consumer gone) is not an Exception
                mapped = _mapped(exc, what)
                if mapped is exc:
                    raise
                raise mapped from None

        return gen_wrapper  # type: ignore[return-value]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            mapped = _mapped(exc, what)
            if mapped is exc:
                raise
            raise mapped from None

    return wrapper  # type: ignore[return-value]


def _mapped(exc: Exception, what: str) -> Exception:
    if isinstance(exc, flight.FlightError | ArrowlogError | NotImplementedError):
        if isinstance(exc, StorageError | Unavailable):
            logger.warning("%s failed: %s: %s", what, type(exc).__name__, exc)
        else:
            logger.debug("%s refused: %s: %s", what, type(exc).__name__, exc)
    else:
        logger.error("%s failed unexpectedly", what, exc_info=exc)
    return to_flight_error(exc)
