"""A client for herald, the persistent event-delivery daemon (wire protocol version 1).

Standard library only, written from PROTOCOL.md.
"""

from .errors import (
    AdminError,
    ConnectFailed,
    ConnectionClosed,
    EncodeError,
    ErrorCode,
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
    "AdminError",
    "ConnectFailed",
    "ConnectionClosed",
    "Delivery",
    "EncodeError",
    "ErrorCode",
    "Event",
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
]
