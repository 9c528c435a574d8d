"""Ctrl-C reaches the command even when it lands where Python would swallow the exception."""
import signal
import sys
import time
import weakref

import pytest

from autoc.cli import delivering_swallowed_interrupts


class _Thing:
    pass


def _received_after(callback_error: type[BaseException]) -> tuple[list[int], list[type]]:
    """Raise ``callback_error`` inside a real weakref callback with the hook installed; the SIGINTs
    that arrive afterwards and the errors passed on to the previous hook."""
    received, passed_on = [], []
    previous_signal = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    previous_hook = sys.unraisablehook
    sys.unraisablehook = delivering_swallowed_interrupts(lambda unraisable: passed_on.append(unraisable.exc_type))
    try:
        def callback(_):
            raise callback_error

        thing = _Thing()
        ref = weakref.ref(thing, callback)
        del thing  # the callback runs here; Python ignores what it raises
        deadline = time.monotonic() + 2
        while not received and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        sys.unraisablehook = previous_hook
        signal.signal(signal.SIGINT, previous_signal)
    assert ref() is None
    return received, passed_on


def test_a_ctrl_c_swallowed_inside_a_weakref_callback_is_delivered_again():
    received, passed_on = _received_after(KeyboardInterrupt)
    assert received == [signal.SIGINT] and passed_on == []


def test_other_errors_in_callbacks_go_to_the_previous_hook_and_raise_no_signal():
    received, passed_on = _received_after(ValueError)
    assert received == [] and passed_on == [ValueError]
