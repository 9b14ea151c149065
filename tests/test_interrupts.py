"""Ctrl-C held back while TensorFlow computes (``run.interrupts``): delivered at the next event, never inside one.

A KeyboardInterrupt raised inside ``tf.constant``'s conversion crashes the process (SIGSEGV, measured), so these
tests send real signals to this process and check where the handler ran (Python's own handler is installed for
each test: ``conftest._python_handles_ctrl_c``)."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from init_lab.run.interrupts import deferred, held


def _signal_self(signum: int = signal.SIGINT) -> None:
    os.kill(os.getpid(), signum)
    for _ in range(10_000):  # bytecodes (backward jumps): where Python runs a pending handler
        pass


def test_a_ctrl_c_while_an_event_is_computed_waits_for_that_event_and_the_caller_gets_it_first():
    reached, got = [], []

    def events():
        yield 1
        _signal_self()
        reached.append("after the signal")  # unheld, KeyboardInterrupt is raised before this line
        yield 2
        reached.append("advanced past the interrupted event")
        yield 3

    with pytest.raises(KeyboardInterrupt):
        for event in held(events()):
            got.append(event)
    assert reached == ["after the signal"] and got == [1, 2]  # event 2 handled (an epoch saved), 3 never computed
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_ctrl_c_while_one_is_held_interrupts_at_once():
    reached = []

    def events():
        _signal_self()
        reached.append("first held")
        _signal_self()
        reached.append("second held too")
        yield 1

    with pytest.raises(KeyboardInterrupt):
        list(held(events()))
    assert reached == ["first held"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_while_the_caller_handles_an_event_ctrl_c_is_handled_as_usual():
    def events():
        yield 1
        yield 2

    with pytest.raises(KeyboardInterrupt):
        for _event in held(events()):
            _signal_self()
            pytest.fail("the caller's own code was not interrupted")


def test_sigterm_is_held_where_python_handles_it_and_left_to_the_system_where_it_does_not():
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with deferred():
            _signal_self(signal.SIGTERM)
            assert seen == []  # held
        assert seen == [signal.SIGTERM]  # delivered at the block's end, to the handler that was there
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        with deferred():
            assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the system's: still ends the process
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_block_that_raises_restores_the_handlers():
    with pytest.raises(ValueError), deferred():
        raise ValueError("a failing block")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_outside_the_main_thread_events_pass_through():
    out, errors = [], []

    def consume():
        try:
            out.extend(held(iter([1, 2, 3])))
            with deferred():
                out.append(4)
        except Exception as exc:  # signal.signal refuses threads: this would be ValueError
            errors.append(exc)

    thread = threading.Thread(target=consume)
    thread.start()
    thread.join()
    assert errors == [] and out == [1, 2, 3, 4]


def test_the_events_generator_is_closed_when_the_signal_is_delivered():
    closed = []

    def events():
        try:
            _signal_self()
            yield 1
            yield 2
        finally:
            closed.append(True)  # the engine's frames (and their tensors) let go at once

    with pytest.raises(KeyboardInterrupt):
        list(held(events()))
    assert closed == [True]
