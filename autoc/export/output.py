"""Writing export files: refuse to replace existing ones unless forced, and never leave half a file."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable

from autoc.errors import StorageError


def claim_outputs(paths: Iterable[Path], *, force: bool) -> None:
    """Check every output of one export before writing any, so a refusal leaves nothing changed."""
    existing = [str(p) for p in paths if p.exists()]
    if existing and not force:
        raise StorageError(
            f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; "
            "pass --force (force=True) to replace, or choose another --output"
        )
    directories = [str(p) for p in paths if p.is_dir()]
    if directories:
        raise StorageError(f"{', '.join(directories)} is a directory; give a file path as --output")


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
