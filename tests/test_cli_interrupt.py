"""Ctrl-C reaches the command even when it lands where Python would swallow the exception."""
import signal
import sys
import time

import pytest

from autoc.cli import _interrupt


def _frame_in(filename: str):
    namespace = {"sys": sys}
    exec(compile("frame = sys._getframe()", filename, "exec"), namespace)
    return namespace["frame"]


def test_ctrl_c_in_ordinary_code_is_a_keyboard_interrupt():
    with pytest.raises(KeyboardInterrupt):
        _interrupt(signal.SIGINT, _frame_in("ordinary.py"))


@pytest.mark.parametrize("filename", ["<frozen importlib._bootstrap>", "/usr/lib/python3.11/weakref.py"])
def test_ctrl_c_inside_a_callback_python_would_swallow_is_delivered_again(filename):
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        try:
            _interrupt(signal.SIGINT, _frame_in(filename))
        except KeyboardInterrupt:
            pytest.fail(f"raised inside {filename}, where Python would ignore it and the search run on")
        deadline = time.monotonic() + 5
        while not received and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert received == [signal.SIGINT]
