"""CIFAR-10 download on request: without network access the error says what to do instead.

Nothing is downloaded: torchvision's archive fetcher is replaced by one that fails the way an
offline machine does (URLError), or that fails the test if it is called at all.
"""
from __future__ import annotations
from urllib.error import URLError

import pytest
import torchvision.datasets.cifar as tv_cifar

from autoc.errors import DataError
from autoc.data.datasets import load_dataset


def test_offline_download_names_the_folder_and_the_fix(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", offline)
    root = tmp_path / "cifar"
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", data_dir=root, input_size=32, download=True)
    message = str(info.value)
    assert str(root) in message and "Name or service not known" in message
    assert "cifar-10-python.tar.gz" in message and "JPEG zip" in message


def test_no_download_when_the_batches_are_there_or_not_asked(tmp_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("download attempted")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", forbidden)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(b"")  # present (damaged): the loader reads, never downloads
    with pytest.raises(DataError, match="lacks data_batch_1"):
        load_dataset("cifar10", data_dir=tmp_path, input_size=32, download=True)
    with pytest.raises(DataError, match="set download to fetch it"):
        load_dataset("cifar10", data_dir=tmp_path / "absent", input_size=32)
