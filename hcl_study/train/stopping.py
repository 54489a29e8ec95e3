"""Cooperative stopping of an epoch: a `threading.Event` checked before every batch."""

from __future__ import annotations

import threading


class EpochInterrupted(Exception):
    """Raised when an epoch's `stop` event is set before the epoch ends."""


def check_stop(stop: threading.Event | None) -> None:
    """Raise `EpochInterrupted` if `stop` is set (never when it is None)."""
    if stop is not None and stop.is_set():
        raise EpochInterrupted("the epoch was stopped before its end")
