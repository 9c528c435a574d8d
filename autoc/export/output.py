"""Writing output files (export, report): refuse to replace existing ones unless forced, never
replace autoc's stored data even when forced, and never leave half a file.

Every command that writes a file the user names goes through ``claim_outputs`` first: a study
database, a device profile, a cache file or a run's own weights and best policy are never
replaced, and ``--force`` replaces only a file of the kind the command writes (an ONNX file by
an ONNX export, a PNG by the report), so a mistyped output path cannot destroy a study.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from autoc.errors import StorageError

SQLITE_HEADER = b"SQLite format 3\x00"
_HEAD_BYTES = 4096
# A run directory's own files beside study.db, and its folders of trained weights.
_RUN_FILES = ("best_policy.json",)
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
JSON = OutputKind("JSON", _json)
CSV = OutputKind("CSV text", _text)
HTML = OutputKind("HTML page", lambda head: _text(head) and head.lstrip().lower().startswith((b"<!doctype html", b"<html")))
PNG = OutputKind("PNG image", lambda head: head.startswith(b"\x89PNG\r\n\x1a\n"))
# torch.save and torch.jit.save write zip archives; older torch wrote a pickle (protocol 2+ starts with 0x80).
TORCH = OutputKind("torch file", lambda head: head.startswith(b"PK\x03\x04") or head[:1] == b"\x80")
# An ONNX model is a protobuf ModelProto whose first field is ir_version (field 1, varint: tag 0x08).
ONNX = OutputKind("ONNX model", lambda head: head[:1] == b"\x08")


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
        return "the run's own best policy"
    if path.parent.name in _RUN_WEIGHT_FOLDERS and (path.parent.parent / "study.db").is_file():
        return "the run's own trained weights"
    return None


def claim_outputs(outputs: Mapping[Path, OutputKind], *, force: bool) -> None:
    """Check every output of one command before writing any, so a refusal leaves nothing changed.
    An existing output needs ``force``; stored data is never replaced, and ``force`` replaces
    only a file of the kind written there."""
    directories = [str(p) for p in outputs if p.is_dir()]
    if directories:
        raise StorageError(f"{', '.join(directories)} is a directory; give a file path as --output")
    check_replaceable(outputs)
    existing = [str(p) for p in outputs if p.exists()]
    if existing and not force:
        raise StorageError(
            f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; "
            "pass --force (force=True) to replace, or choose another --output"
        )


def check_replaceable(outputs: Mapping[Path, OutputKind]) -> None:
    """Refuse replacing stored data, or a file of another kind than the one written there."""
    for path, kind in outputs.items():
        if not path.is_file():
            continue
        stored = stored_data_kind(path)
        if stored is not None:
            raise StorageError(f"{path} is {stored}, which no output replaces, not even with --force; "
                               "choose another output path")
        if path.stat().st_size and not kind.looks_like(_head(path)):
            raise StorageError(f"{path} is not a {kind.name}; --force replaces only a file of the kind written "
                               "there, so choose another output path (or move that file away)")


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """Write via a temp file in the same folder and ``os.replace``: readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))
