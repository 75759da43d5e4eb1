"""Cooperative cancellation of one request's work (the server's deadline).

The server runs a request's work in a worker thread inside ``cancellable(event)`` and sets the event when
the request passes its deadline. The work stops at the next check point: between the stages of a rating
(``Assessor.rate``: after decoding, between encoder streams, after scoring) and at the next generated token
(``llmvqa.model.generation``), so a timed-out request frees the model within one stage, not at its end.
"""

from __future__ import annotations

import contextlib
import threading

_local = threading.local()


class Cancelled(Exception):
    """The current request passed its deadline; its work stops here."""


@contextlib.contextmanager
def cancellable(event: threading.Event):
    """Work started in this thread inside the block stops at its next check point once ``event`` is set."""
    previous = getattr(_local, "cancel", None)
    _local.cancel = event
    try:
        yield
    finally:
        _local.cancel = previous


def current() -> threading.Event | None:
    """The cancel event of the work running in this thread (None outside ``cancellable``)."""
    return getattr(_local, "cancel", None)


def check() -> None:
    """Raise ``Cancelled`` when this thread's work was cancelled."""
    event = current()
    if event is not None and event.is_set():
        raise Cancelled()


__all__ = ["Cancelled", "cancellable", "check", "current"]
