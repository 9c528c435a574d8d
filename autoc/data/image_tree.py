"""Image files laid out as ``<split>/<class>/<image>``, in a zip archive or a directory.

Scanning only lists names (cheap, even for 60,000 members); bytes are read later for the
members a caller keeps. Zip members are read in place, never extracted.
"""
from __future__ import annotations

import os
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping

from autoc.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class ImageTree:
    """Where the images are and which ones: ``files[split][class]`` = sorted relative names."""

    location: Path
    kind: str  # "zip" or "dir"
    prefix: str  # zip only: folder(s) in front of the split folders, "" or ending in "/"
    classes: tuple[str, ...]
    files: Mapping[str, Mapping[str, tuple[str, ...]]]
    read: Callable[[str], bytes]  # relative name -> file bytes; valid inside open_image_tree only

    def describe(self, name: str) -> str:
        """How to name one member in a message."""
        if self.kind == "zip":
            return f"member {self.prefix}{name} of zip archive {self.location}"
        return str(self.location / name)


def layout_text(splits: tuple[str, ...]) -> str:
    """The expected folder layout of ``splits``, as messages show it."""
    return " and ".join(f"{split}/<class>/<image>.jpg" for split in splits)


@contextmanager
def open_image_tree(path: Path, *, splits: tuple[str, ...], what: str) -> Iterator[ImageTree]:
    """Index ``path`` (a zip or a directory), check it holds ``splits`` with the same classes,
    and keep it open for reading inside the ``with`` block (one zip open for list and reads)."""
    if path.is_dir():
        files = {split: _scan_split_dir(path / split) for split in splits if (path / split).is_dir()}
        classes = _check_layout(files, where=f"folder {path}", splits=splits, what=what)
        yield ImageTree(location=path, kind="dir", prefix="", classes=classes, files=files,
                        read=lambda name: _read_file(path / name))
        return
    with _open_zip(path, what=what, splits=splits) as archive:
        prefix, files = _scan_zip_names(archive.namelist(), path=path, splits=splits, what=what)
        classes = _check_layout(files, where=f"zip archive {path}", splits=splits, what=what)
        yield ImageTree(location=path, kind="zip", prefix=prefix, classes=classes, files=files,
                        read=lambda name: _read_member(archive, prefix + name, path))


def _scan_split_dir(split_dir: Path) -> dict[str, tuple[str, ...]]:
    found: dict[str, tuple[str, ...]] = {}
    with os.scandir(split_dir) as entries:
        class_dirs = sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))
    for cls in class_dirs:
        with os.scandir(split_dir / cls) as entries:
            names = sorted(e.name for e in entries if e.is_file() and _is_image_name(e.name))
        found[cls] = tuple(f"{split_dir.name}/{cls}/{name}" for name in names)
    return found


def _scan_zip_names(
    names: list[str], *, path: Path, splits: tuple[str, ...], what: str
) -> tuple[str, dict[str, dict[str, tuple[str, ...]]]]:
    # Split folders may sit under a top folder (``cifar10/train/...``); find it from the members.
    entries: list[tuple[str, str, str, str]] = []  # (prefix, split, class, image name or "")
    for name in names:
        parts = tuple(part for part in name.split("/") if part)
        if any(part.startswith(".") or part == "__MACOSX" for part in parts):
            continue
        if name.endswith("/"):  # folder entries reveal class folders that hold no images
            if len(parts) >= 2 and parts[-2] in splits:
                entries.append((_join(parts[:-2]), parts[-2], parts[-1], ""))
        elif len(parts) >= 3 and parts[-3] in splits and _is_image_name(parts[-1]):
            entries.append((_join(parts[:-3]), parts[-3], parts[-2], parts[-1]))
    prefixes = sorted({entry[0] for entry in entries})
    if len(prefixes) > 1:
        shown = ", ".join(p or "(top level)" for p in prefixes[:4])
        raise DataError(
            f"{what}: zip archive {path} holds split folders under several top folders ({shown}); "
            f"repack it with one folder holding {layout_text(splits)}"
        )
    prefix = prefixes[0] if prefixes else ""
    listing: dict[str, dict[str, list[str]]] = {}
    for _, split, cls, leaf in entries:
        images = listing.setdefault(split, {}).setdefault(cls, [])
        if leaf:
            images.append(f"{split}/{cls}/{leaf}")
    files = {split: {cls: tuple(sorted(listing[split][cls])) for cls in sorted(listing[split])} for split in listing}
    return prefix, files


def _check_layout(
    files: Mapping[str, Mapping[str, tuple[str, ...]]], *, where: str, splits: tuple[str, ...], what: str
) -> tuple[str, ...]:
    expected = f"expected {layout_text(splits)}"
    missing = [split for split in splits if not files.get(split)]
    if missing:
        present = [split for split in splits if files.get(split)]
        found = f"it has {present[0]}/ but no {missing[0]}/ class folders" if present else (
            f"it has no {' or '.join(s + '/' for s in splits)} class folders"
        )
        raise DataError(f"{what}: {where} does not have the expected layout: {found}; {expected}")
    for split in splits:
        for cls, images in files[split].items():
            if not images:
                raise DataError(
                    f"{what}: class folder {split}/{cls} in {where} holds no {'/'.join(IMAGE_SUFFIXES)} images; "
                    f"add images or remove the folder ({expected})"
                )
    first = set(files[splits[0]])
    for split in splits[1:]:
        other = set(files[split])
        if other != first:
            only_first = sorted(first - other)
            only_other = sorted(other - first)
            raise DataError(
                f"{what}: {where} has different classes in {splits[0]}/ and {split}/ "
                f"(only in {splits[0]}/: {only_first or 'none'}; only in {split}/: {only_other or 'none'}); "
                "give both splits the same class folders"
            )
    if len(first) < 2:  # every candidate would score 1.0: nothing to search for
        raise DataError(
            f"{what}: {where} has only one class ({', '.join(sorted(first))}); a classifier needs at least two "
            f"class folders in each split, e.g. {splits[0]}/cat/ and {splits[0]}/dog/"
        )
    return tuple(sorted(first))


def _join(parts: tuple[str, ...]) -> str:
    return "".join(part + "/" for part in parts)


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES)


@contextmanager
def _open_zip(path: Path, *, what: str, splits: tuple[str, ...]) -> Iterator[zipfile.ZipFile]:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise DataError(
            f"{what}: {path} is not a zip archive (or it is damaged); pass a .zip or a folder holding "
            f"{layout_text(splits)}"
        ) from None
    except OSError as exc:
        raise DataError(
            f"{what}: cannot open {path} ({exc.strerror or exc}); check the path and its permissions"
        ) from None
    with archive:
        yield archive


def _read_member(archive: zipfile.ZipFile, name: str, path: Path) -> bytes:
    try:
        return archive.read(name)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
        raise DataError(
            f"cannot read member {name} of zip archive {path} ({exc}); the archive is damaged, fetch it again"
        ) from None


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(
            f"cannot read image {path} ({exc.strerror or exc}); check the file and its permissions"
        ) from None
