"""What the blocking and the asyncio client share beyond the protocol state."""

from __future__ import annotations

import enum
import json
import os
import socket
from collections.abc import Sequence
from typing import Any

from .connection import ClientState, ProtocolState
from .errors import AdminError, ConnectFailed, ProtocolViolation
from .limits import RECV_CHUNK_BYTES, WINDOW_EVENTS_DEFAULT
from .model import Event

DEFAULT_SOCKET_RELATIVE_PATH = os.path.join("herald-data", "herald.sock")
"""Where ``herald serve`` puts its socket when run without ``--data-dir``/``--socket``."""

DEFAULT_TIMEOUT_S = 60.0
"""How long a request waits for its answer unless told otherwise. It is long because a
daemon run with ``--when-full wait`` may hold a publish (5 s by default)."""

class _DefaultTimeout(enum.Enum):
    DEFAULT = "default"


DefaultTimeout = _DefaultTimeout
DEFAULT = _DefaultTimeout.DEFAULT
"""Passed as ``timeout``: use the client's own default time limit."""

TimeoutArg = float | None | _DefaultTimeout
"""A method's ``timeout``: seconds, ``None`` (no limit) or :data:`DEFAULT`."""

DEFAULT_WINDOW_EVENTS = WINDOW_EVENTS_DEFAULT
"""Events in flight a subscription asks for unless told otherwise."""


def resolve_socket_path(socket_path: str | os.PathLike[str] | None) -> str:
    """``socket_path``, or ``herald-data/herald.sock`` under the current directory."""
    if socket_path is None:
        return os.path.join(os.getcwd(), DEFAULT_SOCKET_RELATIVE_PATH)
    return os.fspath(socket_path)


def connect_failed(path: str, error: OSError) -> ConnectFailed:
    """A :class:`ConnectFailed` that says what to do next."""
    hint = ""
    if isinstance(error, (FileNotFoundError, ConnectionRefusedError)):
        hint = "; is `herald serve` running with this socket (--data-dir DIR puts it at DIR/herald.sock)?"
    return ConnectFailed(f"cannot connect to herald at {path}: {error.strerror or error}{hint}")


def make_event(
    topic: str,
    payload: bytes,
    severity: int,
    source: str,
    flags: int,
    key: bytes | str,
) -> Event:
    """An :class:`Event` from ``publish``'s arguments."""
    return Event(
        topic=topic, payload=payload, severity=severity, source=source, flags=flags, key=key
    )


def patterns_list(patterns: str | Sequence[str]) -> list[str]:
    """One pattern or several, as a list."""
    return [patterns] if isinstance(patterns, str) else list(patterns)


def parse_status(text: str) -> dict[str, Any]:
    """A ``StatusReply``'s JSON, which must be an object."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ProtocolViolation(f"server sent a StatusReply that is not JSON: {error}") from None
    if not isinstance(value, dict):
        raise ProtocolViolation(
            f"server sent a StatusReply whose JSON is a {type(value).__name__}, not an object"
        )
    return value


def parse_admin_answer(text: str) -> dict[str, Any]:
    """An ``Admin`` answer; ``{"error": ...}`` becomes :class:`AdminError`."""
    answer = parse_status(text)
    if "error" in answer:
        raise AdminError(str(answer["error"]), answer)
    return answer



def salvage_after_write_failure(sock: socket.socket, protocol: ProtocolState) -> None:
    """Read what the daemon sent before it closed, after a write to it failed.

    A daemon that refuses a frame sends ``Error`` and closes (section 7); a frame the
    client wrote after that fails with EPIPE. The ``Error`` is already in the socket's
    receive buffer, so a non-blocking read finds it and the caller can raise the real
    reason (say ``not_permitted``) instead of "broken pipe". Reads only what has arrived.
    """
    was_blocking = sock.getblocking()
    sock.setblocking(False)
    try:
        while protocol.state is not ClientState.CLOSED:
            try:
                data = sock.recv(RECV_CHUNK_BYTES)
            except ConnectionResetError:
                data = b""
            except OSError:
                return
            if not data:
                protocol.receive_eof()
                return
            try:
                protocol.receive(data)
            except ProtocolViolation:
                return
    finally:
        try:
            sock.setblocking(was_blocking)
        except OSError:
            pass
