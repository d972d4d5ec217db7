"""Topic, pattern and subscription-name grammars (PROTOCOL.md sections 4.2 and 8).

Each check returns a problem description, or ``None`` when the value is valid; the
encoder turns a problem into :class:`~herald_client.errors.EncodeError` and the decoder
into :class:`~herald_client.errors.ProtocolViolation`.
"""

from __future__ import annotations

from . import limits

_SEGMENT_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_NAME_BYTES = _SEGMENT_BYTES | frozenset(b".")


def _segment_problem(segment: bytes) -> str | None:
    if not segment:
        return "has an empty segment"
    if not _SEGMENT_BYTES.issuperset(segment):
        return "has a segment with a byte outside A-Z a-z 0-9 _ -"
    return None


def topic_problem(topic: bytes) -> str | None:
    """Why ``topic`` breaks the topic grammar, or ``None``."""
    if not 1 <= len(topic) <= limits.TOPIC_BYTES_MAX:
        return f"is {len(topic)} bytes; a topic is 1..={limits.TOPIC_BYTES_MAX} bytes"
    for segment in topic.split(b"."):
        problem = _segment_problem(segment)
        if problem is not None:
            return problem
    return None


def pattern_problem(pattern: bytes) -> str | None:
    """Why ``pattern`` breaks the pattern grammar, or ``None``."""
    if not 1 <= len(pattern) <= limits.PATTERN_BYTES_MAX:
        return f"is {len(pattern)} bytes; a pattern is 1..={limits.PATTERN_BYTES_MAX} bytes"
    segments = pattern.split(b".")
    for index, segment in enumerate(segments):
        if segment == b">":
            if index != len(segments) - 1:
                return "has '>' before its last segment"
            continue
        if segment == b"*":
            continue
        problem = _segment_problem(segment)
        if problem is not None:
            if b"*" in segment or b">" in segment:
                return "has a wildcard that is not a whole segment"
            return problem
    return None


def subscription_name_problem(name: bytes) -> str | None:
    """Why ``name`` is not a valid subscription name, or ``None`` (empty = live-only)."""
    if len(name) > limits.SUBSCRIPTION_NAME_BYTES_MAX:
        return (
            f"is {len(name)} bytes; a subscription name is "
            f"0..={limits.SUBSCRIPTION_NAME_BYTES_MAX} bytes"
        )
    if not _NAME_BYTES.issuperset(name):
        return "has a byte outside A-Z a-z 0-9 _ . -"
    return None


def topic_matches(pattern: str, topic: str) -> bool:
    """Whether ``topic`` matches ``pattern`` (section 8); both assumed valid.

    The daemon does the filtering; this is for callers (and tests) that want to know
    what a subscription will receive.
    """
    pattern_segments = pattern.split(".")
    topic_segments = topic.split(".")
    for index, segment in enumerate(pattern_segments):
        if segment == ">":
            return len(topic_segments) > index
        if index >= len(topic_segments):
            return False
        if segment != "*" and segment != topic_segments[index]:
            return False
    return len(topic_segments) == len(pattern_segments)
