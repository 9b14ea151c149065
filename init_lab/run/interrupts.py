"""Ctrl-C (and the command line's SIGTERM) held back while a group trains, and delivered at its next event.

Python raises ``KeyboardInterrupt`` at whatever bytecode runs when a signal arrives. Inside TensorFlow's
Python API that can be the middle of a C++ call that calls back into Python and does not expect an
exception: a Ctrl-C during ``tf.constant``'s conversion ended a sweep with SIGSEGV instead of exit 130
(1 in 115 Ctrl-Cs on this 2-core machine under load; CI saw it once). So while the engine's generator
runs, a signal only marks the stop as requested; the generator goes on to its next event (a progress
chunk of an epoch, an epoch end: TensorFlow could not be interrupted inside its own calls anyway), and
the signal's own handler runs there, in initlab's code, where the sweep records what is finished. A
second signal while one is held runs the handler at once: a user who presses twice wants out now.

Only signals whose handler is Python code are held (Python's default for SIGINT, the CLI's for
SIGTERM, a notebook kernel's); a signal left to the operating system still ends the process. Only the
main thread can set handlers, so elsewhere (a Ray worker's task thread) events pass through unchanged.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

HELD = (signal.SIGINT, signal.SIGTERM)
_END = object()


def held(events: Iterator[T]) -> Iterator[T]:
    """``events``, each computed with Ctrl-C held back. A signal held while an event was computed is delivered
    once the caller has handled that event (its handler raises there, typically ``KeyboardInterrupt``); while
    the caller handles an event, handlers are as they were."""
    try:
        while True:
            with _Holding() as holding:
                event = next(events, _END)
            if event is not _END:
                yield event  # first: an epoch that ended is the caller's to save
            holding.deliver()
            if event is _END:
                return
    finally:  # as ``yield from`` would: a stopped caller, or the delivered signal, closes the events' generator
        close = getattr(events, "close", None)
        if close is not None:
            close()


@contextmanager
def deferred() -> Iterator[None]:
    """A block (TensorFlow work between two points where stopping is safe) with Ctrl-C held back, delivered at
    its end."""
    with _Holding() as holding:
        yield
    holding.deliver()


class _Holding:
    """A context in which SIGINT and SIGTERM, where Python handles them, are recorded instead of handled (the
    first one); a second one meanwhile runs its handler at once. ``deliver`` runs the recorded one's handler."""

    def __init__(self) -> None:
        self.pending: tuple[int, Callable] | None = None
        self.previous: dict[int, Callable] = {}

    def __enter__(self) -> _Holding:
        if threading.current_thread() is threading.main_thread():  # elsewhere Python refuses to set handlers
            for signum in HELD:
                handler = signal.getsignal(signum)
                if callable(handler):
                    self.previous[signum] = handler
                    signal.signal(signum, self._hold)
        return self

    def _hold(self, signum: int, frame) -> None:
        handler = self.previous[signum]
        if self.pending is not None:  # pressed again: at once
            handler(signum, frame)
        self.pending = (signum, handler)

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def deliver(self) -> None:
        if self.pending is not None:
            signum, handler = self.pending
            self.pending = None
            handler(signum, None)  # the signal's own handler, now: it raises, typically
