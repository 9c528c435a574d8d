"""User-facing failures. Each message states the rule, the offending value and the fix."""
from __future__ import annotations

import re


class AutocError(Exception):
    """Base of every error the CLI reports as one line with exit code 2.

    ``fields``: the options (Python field or argument names, dotted inside a group) that the
    message names; a command line rewrites them into its flags."""

    exit_code = 2

    def __init__(self, message: str = "", *, fields: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.fields = tuple(fields)


class OptionError(AutocError):
    """An option (a field of an options value, a keyword argument) is invalid; the message names it."""

    def within(self, group: str) -> "OptionError":
        """The same error for the options group at field ``group``: its fields named ``group.field``."""
        message = str(self)
        for name in sorted(self.fields, key=len, reverse=True):
            message = re.sub(rf"(?<![\w.]){re.escape(name)}(?![\w])", f"{group}.{name}", message)
        return type(self)(message, fields=tuple(f"{group}.{name}" for name in self.fields))


class SpaceError(AutocError):
    """A search-space file is missing, malformed or out of range."""


class PolicyError(AutocError):
    """A candidate, policy or policy file is inconsistent or corrupt."""


class DataError(AutocError):
    """A dataset name, directory or layout is wrong."""


class BudgetError(AutocError):
    """A latency or energy budget cannot be met by the space."""


class StorageError(AutocError):
    """A study storage is unreachable, malformed, or holds an incompatible study."""


class DeviceError(AutocError):
    """A device profile is unknown, corrupt or from another schema version."""


class ModelError(AutocError):
    """A user's model reference is unknown, cannot be built, or its weights do not match it."""


class ComputeError(AutocError):
    """The device asked to run training on (train_device) is unknown or not available here."""


class MissingToolError(AutocError):
    """An optional package a command needs (e.g. ExecuTorch) is not installed; the message says how to install it."""


def first_line(exc: BaseException) -> str:
    """The first non-empty line of ``exc``'s message (its type name when it has none): what a
    one-line user message quotes of a library's multi-line error."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# scheme://user:password@host -> scheme://user:***@host (the password up to the last '@' of the authority;
# malformed URLs, scheme:/ or scheme:, too: those are echoed back to say they are malformed)
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*:/{0,2}[^:/@\s]*:)[^/\s]*@")


def mask_passwords(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ***: storage URLs are echoed in
    errors and summaries, and terminals, logs and CI output are read by others."""
    return _URL_PASSWORD.sub(r"\1***@", text)
