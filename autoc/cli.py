"""Command line: thin subcommands over the library. User errors print one line and exit 2."""
from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import sys
import threading
from typing import NoReturn

from autoc.commands import register_all
from autoc.commands._flags import with_flags
from autoc.errors import AutocError, mask_passwords


class OneLineErrorParser(argparse.ArgumentParser):
    """A usage error is one line naming the command and where its options are listed, not the
    whole usage block. Subcommand parsers inherit it (add_subparsers uses the parent's class)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The `autoc` parser with every subcommand of autoc.commands registered."""
    parser = OneLineErrorParser(prog="autoc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    register_all(sub)
    return parser


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record comes (a test's capture, a redirected stream)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass  # StreamHandler's constructor sets it; the property always answers sys.stderr


class _Lines(logging.Formatter):
    """The library's INFO records as plain lines, as progress notes; its warnings prefixed autoc:,
    other libraries' warnings by their logger's name."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        if record.levelno < logging.WARNING:
            return message
        return f"autoc: {message}" if _ours(record) else f"{record.name}: {message}"


def _ours(record: logging.LogRecord) -> bool:
    return record.name == "autoc" or record.name.startswith("autoc.")


def _shown(record: logging.LogRecord) -> bool:
    """autoc's INFO and up; other libraries' warnings and up (what Python shows with no handler)."""
    return _ours(record) or record.levelno >= logging.WARNING


def configure_logging() -> None:
    """The library logs (autoc.* loggers); the command shows its INFO and above on stderr.

    The handler sits on the root logger: a dependency calling logging.basicConfig() on import
    (ONNX Runtime's quantisation tools do) then adds no second handler, which printed every
    line twice."""
    logging.getLogger("autoc").setLevel(logging.INFO)
    root = logging.getLogger()
    if not any(isinstance(handler, _StderrHandler) for handler in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(_Lines("%(message)s"))
        handler.addFilter(_shown)
        root.addHandler(handler)


def delivering_swallowed_interrupts(previous):
    """A sys.unraisablehook: Python ignores an exception raised inside a weakref callback, a __del__
    or a gc callback ("Exception ignored in ..."; importlib's module-lock callback and SQLAlchemy's
    registry cleanup are two), so a Ctrl-C landing there would let the search run on and exit 0;
    this hook delivers it again a moment later instead and passes other errors to ``previous``."""
    def hook(unraisable) -> None:
        if issubclass(unraisable.exc_type, KeyboardInterrupt):
            threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()
            return
        previous(unraisable)
    return hook


def main(argv: list[str] | None = None) -> int:
    """Run one `autoc` command and return its exit code; a user error prints one line naming the
    user's flags (exit 2).

        $ autoc search --budget-ms 20 --trials 30
    """
    args = build_parser().parse_args(argv)
    configure_logging()
    previous_hook = sys.unraisablehook
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        sys.unraisablehook = delivering_swallowed_interrupts(previous_hook)
    try:
        return _run(args)
    finally:
        sys.unraisablehook = previous_hook


def _run(args: argparse.Namespace) -> int:
    flags = getattr(args, "option_flags", {})
    try:
        return args.handler(args)
    except AutocError as exc:
        message = with_flags(str(exc), exc.fields, flags)  # the library names fields; the user typed flags
        print(f"autoc: error: {mask_passwords(message)}", file=sys.stderr)  # whatever message quotes a URL
        return exc.exit_code
    except BrokenPipeError:
        # `autoc show ... | head` closed the pipe: not an error of ours; keep stderr quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("autoc: interrupted; completed work is stored, re-run the same command to resume", file=sys.stderr)
        return 130
    except Exception as exc:  # a library (Optuna, SQLAlchemy) raising over one of ours, or over a full disk
        message = user_error_in_chain(exc, flags=flags)
        if message is None:
            raise  # a bug: its traceback is what a report needs
        print(f"autoc: error: {mask_passwords(message)}", file=sys.stderr)
        return 2


DISK_FULL = ("the disk is full, so the study could not be written; free some space and re-run the same command "
             "to resume (completed trials are stored, the unfinished one is retried)")


def user_error_in_chain(exc: BaseException, *, flags: dict[str, str] | None = None) -> str | None:
    """The one-line message of an AutocError, or of a full disk, in ``exc`` or the exceptions it
    was raised from or while handling: Optuna re-raises a trial's error as its own when it then
    cannot store the trial (e.g. "Should not reach." after a write to a full disk failed)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, AutocError):
            return with_flags(str(current), current.fields, flags or {})
        if (isinstance(current, OSError) and current.errno == errno.ENOSPC) or "database or disk is full" in str(current):
            return DISK_FULL
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return None


if __name__ == "__main__":
    sys.exit(main())
