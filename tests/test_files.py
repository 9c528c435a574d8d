"""autoc.files: the one atomic writer; a failed write leaves the old file, no temp file, one line."""
import errno
import os
import stat

import pytest
import torch

import autoc.files
from autoc.errors import StorageError
from autoc.commands._flags import with_flags
from autoc.files import HTML, claim_outputs, save_torch_atomic, write_bytes_atomic


def _failing_replace(code):
    def replace(src, dst):
        raise OSError(code, "simulated")
    return replace


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    path = write_bytes_atomic(tmp_path / "out.bin", b"old")
    monkeypatch.setattr(autoc.files.os, "replace", _failing_replace(errno.ENOSPC))

    with pytest.raises(StorageError, match=r"out\.bin: the disk is full; free some space"):
        write_bytes_atomic(path, b"new")

    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_a_given_fix_ends_the_line_of_a_failed_write(tmp_path, monkeypatch):
    monkeypatch.setattr(autoc.files.os, "replace", _failing_replace(errno.EACCES))

    with pytest.raises(StorageError, match=r"a\.pt: simulated; pass a writable cache_dir$") as raised:
        save_torch_atomic(tmp_path / "a.pt", {"w": torch.ones(2)}, fix="pass a writable cache_dir",
                          fields=("cache_dir",))
    assert raised.value.fields == ("cache_dir",)  # the option the fix names, for a command to show as its flag
    assert list(tmp_path.iterdir()) == []


def test_an_existing_output_names_the_arguments_and_a_command_shows_its_flags(tmp_path):
    page = tmp_path / "output" / "report.html"
    page.parent.mkdir()
    page.write_text("<!DOCTYPE html><p>old")
    with pytest.raises(StorageError, match="pass force to replace, or choose another output$") as raised:
        claim_outputs({page: HTML}, force=False)
    shown = with_flags(str(raised.value), raised.value.fields, {"force": "--force", "output": "--output"})
    assert shown == f"{page} already exists; pass --force to replace, or choose another --output"  # path as it is


def test_torch_objects_are_saved_into_missing_folders(tmp_path):
    path = save_torch_atomic(tmp_path / "cache" / "w.pt", {"w": torch.ones(2)})

    assert torch.equal(torch.load(path)["w"], torch.ones(2))


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_get_the_mode_the_umask_gives_a_new_file(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        text = autoc.files.write_text_atomic(tmp_path / "best_policy.json", "{}")
        weights = save_torch_atomic(tmp_path / "w.pt", {"w": torch.ones(1)})
        replaced = write_bytes_atomic(text, b"{ }")  # replacing a file gives the same mode
        folder = autoc.files.make_temp_dir(tmp_path / "packs", prefix=".pack.")
    finally:
        os.umask(old)
    for path in (text, weights, replaced):
        assert stat.S_IMODE(path.stat().st_mode) == mode, path
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~umask
