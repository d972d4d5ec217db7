"""Exceptions raised by the herald client.

Four kinds, four treatments:

* :class:`EncodeError` (a :class:`ValueError`): the caller asked for something the
  protocol cannot carry (a field over its limit, a topic breaking the grammar). Nothing
  was sent; the connection is unchanged.
* :class:`ServerError`: the daemon answered with an ``Error`` frame. It carries the code's
  name and number and the daemon's message. Two codes do not close the connection:
  :class:`FullError` (code 5, ``full``: retry later) and :class:`ForbiddenError` (code 13,
  ``forbidden``: the daemon's access policy refused it; do what this user may).
* :class:`ProtocolViolation`: the daemon sent something version 1 does not allow (a
  malformed frame, a frame not valid in the connection's state). The client closes.
* :class:`ConnectionClosed`: the connection ended (the daemon closed it, or the client
  did) while an answer was still expected.

:class:`UsageError` is a call this client refuses before sending anything (for example
reading deliveries before subscribing).
"""

from __future__ import annotations

import enum
from typing import Any


class ErrorCode(enum.IntEnum):
    """The ``code`` of an ``Error`` frame (PROTOCOL.md section 7)."""

    INVALID = 1
    UNEXPECTED = 2
    UNSUPPORTED_VERSION = 3
    TOO_LARGE = 4
    FULL = 5
    NAME_IN_USE = 6
    SHUTTING_DOWN = 7
    INTERNAL = 8
    NOT_PERMITTED = 9
    BUSY = 10
    TABLE_FULL = 11
    TIMED_OUT = 12
    FORBIDDEN = 13

    @property
    def code_name(self) -> str:
        """The name section 7 gives the code, e.g. ``"not_permitted"``."""
        return self.name.lower()

    @property
    def closes(self) -> bool:
        """Whether the server closes the connection right after sending this code."""
        return self not in (ErrorCode.FULL, ErrorCode.FORBIDDEN)


class HeraldError(Exception):
    """Base of every exception this package raises."""


class EncodeError(HeraldError, ValueError):
    """A request cannot be encoded: a value is out of range or breaks a grammar.

    Raised before anything is sent; the connection is unchanged.
    """


class LimitExceeded(EncodeError):
    """A field is longer (or larger) than the protocol allows (PROTOCOL.md section 11)."""


class UsageError(HeraldError):
    """The call is not valid in the client's current state; nothing was sent."""


class ProtocolViolation(HeraldError):
    """The server sent something protocol version 1 does not allow; the client closed."""


class ConnectionClosed(HeraldError, ConnectionError):
    """The connection ended while an answer was still expected."""


class ConnectFailed(HeraldError, ConnectionError):
    """The client could not connect to the daemon's socket."""


class ServerError(HeraldError):
    """The daemon answered a request with an ``Error`` frame.

    Attributes:
        code: the code number (an :class:`ErrorCode` when version 1 defines it).
        code_name: the code's name from section 7, e.g. ``"not_permitted"``.
        message: the daemon's explanation, for people.
        correlation: the failed publish's correlation, or 0.
        closes: whether the connection is closed as a result.
    """

    def __init__(self, code: int, message: str, correlation: int = 0) -> None:
        self.code: int = code
        known = code in ErrorCode._value2member_map_
        self.code_name: str = ErrorCode(code).code_name if known else f"unknown_{code}"
        # A code version 1 does not define is treated as closing: the safe assumption.
        self.closes: bool = ErrorCode(code).closes if known else True
        self.message: str = message
        self.correlation: int = correlation
        super().__init__(f"herald error {self.code_name} ({code}): {message}")


class FullError(ServerError):
    """``full`` (code 5): the log had no room and the publish was **not** stored.

    The connection stays open; publish again later. A more severe event may still be
    stored from herald's reserve.
    """


class ForbiddenError(ServerError):
    """``forbidden`` (code 13): the daemon's access policy does not let this user do it.

    Nothing was done: a publish (or whole batch) was not stored, a subscribe left the
    connection as it was (another may be sent), a status was not given. The connection
    stays open for what the user may do. From :meth:`Client.connect`: the role is refused.
    """


class AdminError(HeraldError):
    """The daemon could not carry out an ``Admin`` request: it answered ``{"error": ...}``.

    The connection stays open. ``answer`` is the whole JSON answer.
    """

    def __init__(self, message: str, answer: dict[str, Any]) -> None:
        self.message: str = message
        self.answer: dict[str, Any] = answer
        super().__init__(f"herald admin request failed: {message}")


def server_error(code: int, message: str, correlation: int) -> ServerError:
    """The exception for an ``Error`` frame: :class:`FullError` for ``full``,
    :class:`ForbiddenError` for ``forbidden``."""
    if code == ErrorCode.FULL:
        return FullError(code, message, correlation)
    if code == ErrorCode.FORBIDDEN:
        return ForbiddenError(code, message, correlation)
    return ServerError(code, message, correlation)


class Timeout(HeraldError, TimeoutError):
    """No answer came within the time allowed. The connection stays usable.

    A late answer to the abandoned request is discarded when it comes. A publish that
    timed out may or may not have been stored: publish it again with the same
    idempotency key to find out without storing it twice.
    """
