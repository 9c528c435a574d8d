"""Writing output files (export, report): refuse to replace existing ones unless forced, never
replace autoc's stored data even when forced, and never leave half a file.

Every command that writes a file the user names goes through ``claim_outputs`` first: a study
database, a device profile, a cache file or a run's own weights and best policy are never
replaced, and ``--force`` replaces only a file of the kind the command writes (an ONNX file by
an ONNX export, a PNG by the report), so a mistyped output path cannot destroy a study.
"""
from __future__ import annotations

import errno
import io
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from autoc.errors import StorageError

SQLITE_HEADER = b"SQLite format 3\x00"
_HEAD_BYTES = 4096
# A run directory's own files beside study.db, and its folders of trained weights.
_RUN_FILES = ("best_policy.json", "best_weights.pt")
_RUN_WEIGHT_FOLDERS = ("weights", "finalists")


@dataclass(frozen=True)
class OutputKind:
    """What a command writes, and how an existing file of that kind looks (its first bytes)."""

    name: str
    looks_like: Callable[[bytes], bool]


def _text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:  # a multi-byte character cut at the end of the head is still text
        return exc.start >= len(head) - 3
    return True


def _json(head: bytes) -> bool:
    return _text(head) and head.lstrip()[:1] in (b"{", b"[")


POLICY_JSON = OutputKind("autoc policy JSON", lambda head: _json(head) and b"autoc.policy/" in head)
MODEL_POLICY_JSON = OutputKind("autoc model-policy JSON", lambda head: _json(head) and b"autoc.model-policy/" in head)
JSON = OutputKind("JSON", _json)
CSV = OutputKind("CSV text", _text)
HTML = OutputKind("HTML page", lambda head: _text(head) and head.lstrip().lower().startswith((b"<!doctype html", b"<html")))
PNG = OutputKind("PNG image", lambda head: head.startswith(b"\x89PNG\r\n\x1a\n"))
# torch.save and torch.jit.save write zip archives; older torch wrote a pickle (protocol 2+ starts with 0x80).
TORCH = OutputKind("torch file", lambda head: head.startswith(b"PK\x03\x04") or head[:1] == b"\x80")
# An ONNX model is a protobuf ModelProto whose first field is ir_version (field 1, varint: tag 0x08).
ONNX = OutputKind("ONNX model", lambda head: head[:1] == b"\x08")
# An ExecuTorch program is a flatbuffer whose file identifier (bytes 4-8) is "ET" and a format version.
PTE = OutputKind("ExecuTorch program", lambda head: head[4:6] == b"ET")


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read(_HEAD_BYTES)
    except OSError:
        return b""


def stored_data_kind(path: Path) -> str | None:
    """What of autoc's stored data the existing file ``path`` is, or None: a study database (any
    SQLite file), a device profile, a cache file, or a run's own weights or best policy."""
    path = Path(path)
    if not path.is_file():
        return None
    head = _head(path)
    if head.startswith(SQLITE_HEADER):
        return "an SQLite database (a study's storage)"
    if b'"autoc.device/' in head or (path.suffix == ".json" and path.parent.name == "devices"):
        return "a device profile"
    if path.parent.name == "cache":
        return "a cache file (trained teachers, supernets and references)"
    if path.name in _RUN_FILES and (path.parent / "study.db").is_file():
        return "the run's own chosen policy or its weights"
    if path.parent.name in _RUN_WEIGHT_FOLDERS and (path.parent.parent / "study.db").is_file():
        return "the run's own trained weights"
    return None


def claim_outputs(outputs: Mapping[Path, OutputKind], *, force: bool) -> None:
    """Check every output of one command before writing any, so a refusal leaves nothing changed.
    An existing output needs ``force``; stored data is never replaced, and ``force`` replaces
    only a file of the kind written there; each output's folder must be writable."""
    directories = [str(p) for p in outputs if p.is_dir()]
    if directories:
        raise StorageError(f"{', '.join(directories)} is a directory; give a file path as output", fields=("output",))
    for path in outputs:
        try:
            check_can_write(path.parent, fix="give output a path in a writable folder")
        except StorageError as error:
            raise StorageError(str(error), fields=("output",)) from None
    check_replaceable(outputs)
    existing = [str(p) for p in outputs if p.exists()]
    if existing and not force:
        raise StorageError(
            f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; "
            "pass force to replace, or choose another output", fields=("force", "output")
        )


def check_replaceable(outputs: Mapping[Path, OutputKind]) -> None:
    """Refuse replacing stored data, or a file of another kind than the one written there."""
    for path, kind in outputs.items():
        if not path.is_file():
            continue
        stored = stored_data_kind(path)
        if stored is not None:
            raise StorageError(f"{path} is {stored}, which no output replaces, not even with force; "
                               "choose another output path", fields=("force",))
        if path.stat().st_size and not kind.looks_like(_head(path)):
            raise StorageError(f"{path} is not a {kind.name}; force replaces only a file of the kind written "
                               "there, so choose another output path (or move that file away)", fields=("force",))


def check_can_write(directory: Path, *, fix: str, what: str = "directory") -> None:
    """Refuse, before any long work, a directory that can be neither written nor created: the
    nearest existing folder on its path must be a writable directory. Nothing is left behind."""
    directory = Path(directory).absolute()
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise StorageError(f"{existing} is not a directory, so {directory} cannot be created there; {fix}")
    try:
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as exc:
        where = "" if existing == directory else f", so {directory} cannot be created"
        raise StorageError(f"{what if not where else 'directory'} {existing} is not writable ({exc.strerror}){where}; "
                           f"{fix}") from None


def write_bytes_atomic(path: Path, data: bytes, *, fix: str | None = None, fields: tuple[str, ...] = ()) -> Path:
    """Write via a temp file in the same folder and ``os.replace``: readers see the old file or the
    new one, and a failed write (a full disk, a read-only folder) leaves no temp file and is one
    line, ending in ``fix`` when given (``fields``: the options ``fix`` names). The one atomic writer
    of the package."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _new_temp_file(path)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())  # on disk before it replaces the old file: a crash leaves one whole
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise StorageError(write_failure(path, exc, fix=fix), fields=fields) from None
        raise
    return path


def _new_temp_file(path: Path) -> tuple[int, str]:
    """A new temp file beside ``path``, opened for writing with mode 0666 less the umask as any
    new file gets: mkstemp's 0600 would survive the rename, hiding outputs from the user's group."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    name, fd = _create_unique(path.parent, prefix=f".{path.name}-", suffix=".tmp", what="temp file",
                              create=lambda candidate: os.open(candidate, flags, 0o666))
    return fd, str(name)


def make_temp_dir(parent: Path, *, prefix: str) -> Path:
    """A new, empty directory in ``parent`` (created if missing) with mode 0777 less the umask, as
    any new directory gets (mkdtemp's 0700 would survive its rename into place)."""
    parent.mkdir(parents=True, exist_ok=True)
    directory, _ = _create_unique(parent, prefix=prefix, suffix="", what="temp directory",
                                  create=lambda candidate: candidate.mkdir(mode=0o777))
    return directory


def _create_unique(parent: Path, *, prefix: str, suffix: str, what: str, create) -> tuple[Path, object]:
    """(name, ``create(name)``) for the first random name in ``parent`` that does not exist yet."""
    for _ in range(100):
        candidate = parent / f"{prefix}{secrets.token_hex(6)}{suffix}"
        try:
            return candidate, create(candidate)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, f"no free {what} name", str(parent))


def save_torch_atomic(path: Path, obj: object, *, fix: str | None = None, fields: tuple[str, ...] = ()) -> Path:
    """``torch.save(obj)`` at ``path`` atomically; serialised in memory first because torch's zip
    writer reports a full disk obscurely."""
    import torch  # here, so the writers of text outputs never load it

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return write_bytes_atomic(path, buffer.getvalue(), fix=fix, fields=fields)


def write_failure(path: Path, exc: OSError, *, fix: str | None = None) -> str:
    """One line for a write that failed: a full disk says so, anything else names the reason."""
    if exc.errno == errno.ENOSPC:
        return f"cannot write {path}: the disk is full; free some space (or write elsewhere) and run the command again"
    return f"cannot write {path}: {exc.strerror or exc}; {fix or 'check that its folder is writable, or write elsewhere'}"


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, as write_bytes_atomic does."""
    return write_bytes_atomic(path, text.encode("utf-8"))
