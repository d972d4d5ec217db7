"""A client for herald, the persistent event-delivery daemon (wire protocol version 1).

Standard library only. :class:`Client` is blocking; :class:`AsyncClient` is the same
API for asyncio. Both are written from PROTOCOL.md.

Producer::

    from herald_client import Client, Role, Severity

    with Client.connect(role=Role.PRODUCER, client_name="fsd") as client:
        seq = client.publish("fs.vol1.error", b"disk full", severity=Severity.ERR)

Subscriber::

    with Client.connect(role=Role.SUBSCRIBER, client_name="ops") as client:
        client.subscribe("ops", ["fs.>"])
        for delivery in client.deliveries():
            if isinstance(delivery, RecoveryDone):
                client.recovered()
                continue
            handle(delivery.payload)
            client.confirm(delivery.seq)
"""

from ._common import DEFAULT, DEFAULT_SOCKET_RELATIVE_PATH, DEFAULT_TIMEOUT_S, resolve_socket_path
from .aio import AsyncClient
from .client import Client
from .errors import (
    AdminError,
    ConnectFailed,
    ConnectionClosed,
    EncodeError,
    ErrorCode,
    ForbiddenError,
    FullError,
    HeraldError,
    LimitExceeded,
    ProtocolViolation,
    ServerError,
    Timeout,
    UsageError,
)
from .model import (
    Delivery,
    Event,
    HelloOk,
    RecoveryDone,
    Role,
    Severity,
    Stored,
    Subscribed,
    SubscribedMode,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT",
    "DEFAULT_SOCKET_RELATIVE_PATH",
    "DEFAULT_TIMEOUT_S",
    "AdminError",
    "AsyncClient",
    "Client",
    "ConnectFailed",
    "ConnectionClosed",
    "Delivery",
    "EncodeError",
    "ErrorCode",
    "Event",
    "ForbiddenError",
    "FullError",
    "HelloOk",
    "HeraldError",
    "LimitExceeded",
    "ProtocolViolation",
    "RecoveryDone",
    "Role",
    "ServerError",
    "Severity",
    "Stored",
    "Subscribed",
    "SubscribedMode",
    "Timeout",
    "UsageError",
    "resolve_socket_path",
]
