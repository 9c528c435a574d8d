"""autoc.files: the one atomic writer; a failed write leaves the old file and no temp file."""
import errno

import pytest
import torch

from autoc.errors import StorageError
from autoc.files import write_atomic, write_bytes_atomic


def test_a_writer_that_raises_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = write_bytes_atomic(tmp_path / "out.bin", b"old")

    def half_then_fail(handle):
        handle.write(b"half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        write_atomic(path, half_then_fail)

    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_a_full_disk_is_one_line_and_a_given_fix_ends_other_failures(tmp_path):
    def full(handle):
        raise OSError(errno.ENOSPC, "No space left on device")

    def denied(handle):
        raise OSError(errno.EACCES, "Permission denied")

    with pytest.raises(StorageError, match="the disk is full; free some space"):
        write_atomic(tmp_path / "a.pt", full)
    with pytest.raises(StorageError, match=r"a\.pt: Permission denied; pass a writable --runs-dir$"):
        write_atomic(tmp_path / "a.pt", denied, fix="pass a writable --runs-dir")
    assert list(tmp_path.iterdir()) == []


def test_torch_saves_through_the_writer_into_missing_folders(tmp_path):
    path = write_atomic(tmp_path / "cache" / "w.pt", lambda handle: torch.save({"w": torch.ones(2)}, handle))

    assert torch.equal(torch.load(path)["w"], torch.ones(2))
