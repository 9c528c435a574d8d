"""Datasets: digits (bundled), CIFAR-10 (zip, folder, pickles), imagefolder, and their errors."""
from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from autoc.errors import DataError
from autoc.data.datasets import DATASET_NAMES, DatasetSplit, load_dataset

CIFAR_ZIP = Path(__file__).resolve().parents[2].parent / "shared/data/cifar10-jpeg.zip"
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
needs_cifar = pytest.mark.skipif(not CIFAR_ZIP.is_file(), reason=f"CIFAR-10 JPEG zip not found at {CIFAR_ZIP}")


def unnormalise(split: DatasetSplit, x: torch.Tensor) -> torch.Tensor:
    """Back to [0, 1] pixels."""
    return x * torch.tensor(split.std).view(1, 3, 1, 1) + torch.tensor(split.mean).view(1, 3, 1, 1)


# --- digits --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits() -> DatasetSplit:
    return load_dataset("digits", input_size=16)


def test_digits_shapes_and_classes(digits: DatasetSplit) -> None:
    assert digits.name == "digits" and "digits" in DATASET_NAMES
    assert digits.classes == tuple(str(i) for i in range(10)) and digits.num_classes == 10
    assert digits.val_x.shape == (round(0.2 * 1797), 3, 16, 16)
    assert digits.train_x.shape == (1797 - len(digits.val_x), 3, 16, 16)
    assert digits.train_x.dtype == digits.val_x.dtype == torch.float32
    assert digits.train_y.dtype == digits.val_y.dtype == torch.int64
    assert digits.input_size == 16
    # grey replicated to three channels
    assert torch.equal(digits.train_x[:, 0], digits.train_x[:, 2])


def test_digits_normalised_with_train_statistics(digits: DatasetSplit) -> None:
    mean = digits.train_x.mean(dim=(0, 2, 3))
    std = digits.train_x.std(dim=(0, 2, 3), unbiased=False)
    assert torch.allclose(mean, torch.zeros(3), atol=1e-5)
    assert torch.allclose(std, torch.ones(3), atol=1e-4)
    # val uses the train statistics, so it maps back into [0, 1] but is not itself standardised
    val = unnormalise(digits, digits.val_x)
    assert val.min() >= -1e-5 and val.max() <= 1 + 1e-5
    assert not torch.allclose(digits.val_x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)


def test_digits_pixels_are_sklearn_images_scaled() -> None:
    split = load_dataset("digits", input_size=8)  # no resampling at the native size
    pixels = unnormalise(split, torch.cat([split.train_x, split.val_x]))[:, 0]
    bunch = load_digits()
    flat_ref = torch.from_numpy(bunch.images / 16.0).float().flatten(1)
    # every loaded image is one of the originals, with its label
    labels = torch.cat([split.train_y, split.val_y])
    for image, label in zip(pixels[::97], labels[::97]):
        match = torch.cdist(image.flatten()[None], flat_ref).argmin()
        assert torch.allclose(image.flatten(), flat_ref[match], atol=1e-5)
        assert bunch.target[int(match)] == label


def test_digits_split_is_stratified(digits: DatasetSplit) -> None:
    totals = np.bincount(load_digits().target)
    val_counts = np.bincount(digits.val_y.numpy(), minlength=10)
    train_counts = np.bincount(digits.train_y.numpy(), minlength=10)
    assert np.array_equal(val_counts + train_counts, totals)
    assert np.all(np.abs(val_counts - 0.2 * totals) <= 1)


def test_digits_seed_determinism(digits: DatasetSplit) -> None:
    again = load_dataset("digits", input_size=16, seed=0)
    assert torch.equal(again.train_x, digits.train_x) and torch.equal(again.val_y, digits.val_y)
    assert again.fingerprint == digits.fingerprint
    other = load_dataset("digits", input_size=16, seed=1)
    assert len(other.val_y) == len(digits.val_y)
    assert not torch.equal(other.val_x, digits.val_x)
    assert other.fingerprint != digits.fingerprint


def test_digits_caps_and_fraction() -> None:
    split = load_dataset("digits", input_size=8, val_fraction=0.5, max_train=100, max_val=30)
    assert len(split.train_y) == 100 and len(split.val_y) == 30
    assert np.array_equal(np.bincount(split.train_y.numpy()), [10] * 10)
    assert np.array_equal(np.bincount(split.val_y.numpy()), [3] * 10)
    assert "train=100" in split.fingerprint and "val=30" in split.fingerprint


def test_train_fingerprint_follows_training_items_not_held_out_size() -> None:
    small_val = load_dataset("digits", input_size=8, max_train=100, max_val=30)
    large_val = load_dataset("digits", input_size=8, max_train=100, max_val=60)
    assert torch.equal(small_val.train_x, large_val.train_x)  # selection streams are independent
    assert small_val.fingerprint != large_val.fingerprint
    assert small_val.train_fingerprint == large_val.train_fingerprint
    assert load_dataset("digits", input_size=8, max_train=120, max_val=30).train_fingerprint != small_val.train_fingerprint
    assert load_dataset("digits", input_size=8, max_train=100, max_val=30, seed=1).train_fingerprint \
        != small_val.train_fingerprint


def test_digits_rejects_data_dir(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="digits .*data_dir") as err:
        load_dataset("digits", data_dir=tmp_path, input_size=8)
    assert str(tmp_path) in str(err.value)


@pytest.mark.parametrize(
    ("options", "pattern"),
    [
        ({"input_size": 0}, "input_size must be a positive integer"),
        ({"input_size": 8, "val_fraction": 1.0}, "val_fraction must lie strictly between 0 and 1"),
        ({"input_size": 8, "max_train": 0}, "max_train must be a positive integer"),
        ({"input_size": 8, "max_val": 5}, r"max_val=5 is smaller than the 10 classes"),
        ({"input_size": 8, "seed": -1}, "seed must be a non-negative integer"),
    ],
)
def test_bad_options(options: dict, pattern: str) -> None:
    with pytest.raises(DataError, match=pattern):
        load_dataset("digits", **options)


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(DataError, match="unknown dataset 'mnist'; use one of digits, cifar10, imagefolder"):
        load_dataset("mnist", input_size=8)


# --- CIFAR-10 from the shared zip ---------------------------------------------------------


@pytest.fixture(scope="module")
def cifar() -> DatasetSplit:
    if not CIFAR_ZIP.is_file():
        pytest.skip(f"CIFAR-10 JPEG zip not found at {CIFAR_ZIP}")
    return load_dataset("cifar10", data_dir=CIFAR_ZIP, input_size=32, max_train=200, max_val=50, seed=3)


@needs_cifar
def test_cifar_zip_subset(cifar: DatasetSplit) -> None:
    assert cifar.classes == CIFAR_CLASSES
    assert cifar.train_x.shape == (200, 3, 32, 32) and cifar.val_x.shape == (50, 3, 32, 32)
    assert np.array_equal(np.bincount(cifar.train_y.numpy()), [20] * 10)
    assert np.array_equal(np.bincount(cifar.val_y.numpy()), [5] * 10)
    assert torch.allclose(cifar.train_x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    # real photos: colour channels differ, and the statistics look like CIFAR's
    assert not torch.equal(cifar.train_x[:, 0], cifar.train_x[:, 2])
    assert all(0.35 < m < 0.6 for m in cifar.mean) and all(0.15 < s < 0.35 for s in cifar.std)
    assert str(CIFAR_ZIP.resolve()) in cifar.fingerprint


@needs_cifar
def test_cifar_zip_seeded_selection(cifar: DatasetSplit) -> None:
    again = load_dataset("cifar10", data_dir=str(CIFAR_ZIP), input_size=16, max_train=200, max_val=50, seed=3)
    assert again.train_x.shape == (200, 3, 16, 16)  # resized
    assert torch.equal(again.train_y, cifar.train_y)
    # same seed, same members: only the size part of the fingerprint differs
    assert again.fingerprint.split("|")[-1] == cifar.fingerprint.split("|")[-1]
    other = load_dataset("cifar10", data_dir=CIFAR_ZIP, input_size=32, max_train=200, max_val=50, seed=4)
    assert other.fingerprint != cifar.fingerprint
    assert not torch.equal(other.train_x, cifar.train_x)


@pytest.fixture(scope="module")
def cifar_members() -> dict[str, bytes]:
    """A few real CIFAR-10 JPEGs: 3 train and 2 test images of two classes."""
    if not CIFAR_ZIP.is_file():
        pytest.skip(f"CIFAR-10 JPEG zip not found at {CIFAR_ZIP}")
    with zipfile.ZipFile(CIFAR_ZIP) as archive:
        names = archive.namelist()
        chosen = []
        for split, count in (("train", 3), ("test", 2)):
            for cls in ("cat", "ship"):
                chosen += sorted(n for n in names if n.startswith(f"{split}/{cls}/") and n.endswith(".jpg"))[:count]
        return {name: archive.read(name) for name in chosen}


def write_tree(root: Path, members: dict[str, bytes]) -> Path:
    for name, data in members.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def pillow_pixels(data: bytes) -> torch.Tensor:
    return torch.from_numpy(np.array(Image.open(io.BytesIO(data)).convert("RGB"))).permute(2, 0, 1).float() / 255


def test_cifar_extracted_folder(tmp_path: Path, cifar_members: dict[str, bytes]) -> None:
    root = write_tree(tmp_path / "cifar", cifar_members)
    split = load_dataset("cifar10", data_dir=root, input_size=32)
    assert split.classes == ("cat", "ship")
    assert split.train_y.tolist() == [0, 0, 0, 1, 1, 1] and split.val_y.tolist() == [0, 0, 1, 1]
    # items come in class then file-name order, decoded like Pillow does
    train_names = sorted(n for n in cifar_members if n.startswith("train/"))
    pixels = unnormalise(split, split.train_x)
    for i, name in enumerate(train_names):
        assert torch.allclose(pixels[i], pillow_pixels(cifar_members[name]), atol=2 / 255)
    assert split.fingerprint.startswith("cifar10|dir:")


def test_cifar_zip_with_top_folder_matches_folder(tmp_path: Path, cifar_members: dict[str, bytes]) -> None:
    archive_path = tmp_path / "packed.zip"
    with zipfile.ZipFile(archive_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("cifar10-jpeg/", b"")
        archive.writestr("__MACOSX/cifar10-jpeg/train/cat/._x.jpg", b"junk")
        for name, data in cifar_members.items():
            archive.writestr(f"cifar10-jpeg/{name}", data)
    from_zip = load_dataset("cifar10", data_dir=archive_path, input_size=24)
    from_dir = load_dataset("cifar10", data_dir=write_tree(tmp_path / "dir", cifar_members), input_size=24)
    assert from_zip.train_x.shape == (6, 3, 24, 24)
    assert torch.equal(from_zip.train_x, from_dir.train_x) and torch.equal(from_zip.val_y, from_dir.val_y)
    assert from_zip.fingerprint != from_dir.fingerprint  # the source is part of it


def test_cifar_corrupt_member_in_zip_is_named(tmp_path: Path, cifar_members: dict[str, bytes]) -> None:
    bad = sorted(n for n in cifar_members if n.startswith("test/ship/"))[0]
    archive_path = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive_path, "w") as archive:
        for name, data in cifar_members.items():
            archive.writestr(name, data[: len(data) // 3] if name == bad else data)
    with pytest.raises(DataError, match="cannot decode image") as err:
        load_dataset("cifar10", data_dir=archive_path, input_size=32)
    assert bad in str(err.value) and str(archive_path) in str(err.value)


def test_cifar_corrupt_file_in_folder_is_named(tmp_path: Path, cifar_members: dict[str, bytes]) -> None:
    root = write_tree(tmp_path / "cifar", cifar_members)
    broken = root / "train" / "cat" / "zzzz.jpg"
    broken.write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError, match="cannot decode image") as err:
        load_dataset("cifar10", data_dir=root, input_size=32)
    assert str(broken) in str(err.value)


# --- CIFAR-10 as torchvision's pickled batches --------------------------------------------


def write_pickles(folder: Path, *, per_batch: int = 20) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = [i % 10 for i in range(per_batch)]
        batch = {b"batch_label": name.encode(), b"labels": labels,
                 b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"filenames": [f"{i}.png".encode() for i in range(per_batch)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"label_names": [c.encode() for c in CIFAR_CLASSES], b"num_cases_per_batch": per_batch}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


def test_cifar_pickles_from_parent_and_folder(tmp_path: Path) -> None:
    folder = write_pickles(tmp_path / "cifar-10-batches-py")
    via_parent = load_dataset("cifar10", data_dir=tmp_path, input_size=32, max_train=50)
    via_folder = load_dataset("cifar10", data_dir=folder, input_size=16)
    assert via_parent.classes == CIFAR_CLASSES
    assert via_parent.train_x.shape == (50, 3, 32, 32) and via_parent.val_x.shape == (20, 3, 32, 32)
    assert np.array_equal(np.bincount(via_parent.train_y.numpy()), [5] * 10)
    assert via_folder.train_x.shape == (100, 3, 16, 16)
    # pixel layout: row-major 3 x 32 x 32 planes, as in the CIFAR format
    with (folder / "test_batch").open("rb") as handle:
        first = pickle.load(handle, encoding="bytes")[b"data"][0].reshape(3, 32, 32)
    assert torch.allclose(unnormalise(via_parent, via_parent.val_x[:1])[0], torch.from_numpy(first) / 255, atol=1e-5)


def test_cifar_pickles_written_by_old_numpy_load(tmp_path: Path) -> None:
    folder = write_pickles(tmp_path / "cifar-10-batches-py")
    for path in folder.iterdir():  # Python 2 era batches name numpy.core, not numpy._core
        path.write_bytes(path.read_bytes().replace(b"numpy._core.", b"numpy.core."))
    assert b"numpy.core.multiarray" in (folder / "test_batch").read_bytes()
    assert load_dataset("cifar10", data_dir=folder, input_size=32).val_x.shape == (20, 3, 32, 32)


def test_cifar_pickle_with_foreign_code_is_refused(tmp_path: Path) -> None:
    folder = write_pickles(tmp_path / "cifar-10-batches-py")
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": Payload()}, protocol=2))
    with pytest.raises(DataError, match="refusing to load it") as err:
        load_dataset("cifar10", data_dir=folder, input_size=32)
    assert str(folder / "data_batch_3") in str(err.value)
    assert not marker.exists()


def test_cifar_pickles_missing_batch(tmp_path: Path) -> None:
    folder = write_pickles(tmp_path / "cifar-10-batches-py")
    (folder / "data_batch_5").unlink()
    with pytest.raises(DataError, match="lacks data_batch_5") as err:
        load_dataset("cifar10", data_dir=tmp_path, input_size=32)
    assert str(folder) in str(err.value)


# --- imagefolder ---------------------------------------------------------------------------

COLOURS = {"apple": (200, 30, 40), "leaf": (20, 180, 60), "sky": (40, 90, 230)}


def write_imagefolder(root: Path, *, train: int = 4, val: int = 2) -> Path:
    for split, count in (("train", train), ("val", val)):
        for cls, colour in COLOURS.items():
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(count):
                size = (40, 20) if i % 2 else (24, 24)  # non-square and square
                image = Image.new("RGB", size, colour)
                (image.convert("RGBA") if i == 1 else image).save(folder / f"{i:03d}.png")
            (folder / "notes.txt").write_text("not an image, ignored")
    return root


def test_imagefolder_pngs(tmp_path: Path) -> None:
    root = write_imagefolder(tmp_path / "shapes")
    split = load_dataset("imagefolder", data_dir=root, input_size=12)
    assert split.classes == ("apple", "leaf", "sky")
    assert split.train_x.shape == (12, 3, 12, 12) and split.val_x.shape == (6, 3, 12, 12)
    assert split.train_y.tolist() == [0] * 4 + [1] * 4 + [2] * 4 and split.val_y.tolist() == [0, 0, 1, 1, 2, 2]
    # solid colours survive resizing and cropping; labels follow the folder names
    pixels = unnormalise(split, split.val_x)
    for image, label in zip(pixels, split.val_y):
        colour = torch.tensor(COLOURS[split.classes[label]], dtype=torch.float32) / 255
        assert torch.allclose(image, colour.view(3, 1, 1).expand_as(image), atol=1 / 255)


def test_imagefolder_caps_are_stratified(tmp_path: Path) -> None:
    root = write_imagefolder(tmp_path / "shapes", train=6)
    split = load_dataset("imagefolder", data_dir=root, input_size=8, max_train=9, max_val=3)
    assert np.array_equal(np.bincount(split.train_y.numpy()), [3, 3, 3])
    assert np.array_equal(np.bincount(split.val_y.numpy()), [1, 1, 1])


def test_imagefolder_class_sets_must_match(tmp_path: Path) -> None:
    root = write_imagefolder(tmp_path / "shapes")
    (root / "val" / "sky").rename(root / "val" / "ocean")
    with pytest.raises(DataError, match=r"different classes in train/ and val/") as err:
        load_dataset("imagefolder", data_dir=root, input_size=8)
    assert "ocean" in str(err.value) and "sky" in str(err.value) and str(root) in str(err.value)


def test_imagefolder_empty_class(tmp_path: Path) -> None:
    root = write_imagefolder(tmp_path / "shapes")
    (root / "train" / "empty").mkdir()
    with pytest.raises(DataError, match="train/empty") as err:
        load_dataset("imagefolder", data_dir=root, input_size=8)
    assert "holds no" in str(err.value) and str(root) in str(err.value)


def test_imagefolder_without_val(tmp_path: Path) -> None:
    root = write_imagefolder(tmp_path / "shapes")
    (root / "val").rename(root / "valid")
    with pytest.raises(DataError, match="has train/ but no val/") as err:
        load_dataset("imagefolder", data_dir=root, input_size=8)
    assert str(root) in str(err.value) and "train/<class>/<image>.jpg and val/<class>/<image>.jpg" in str(err.value)


# --- path errors shared by the file-based datasets -----------------------------------------


@pytest.mark.parametrize("name", ["cifar10", "imagefolder"])
def test_data_dir_required(name: str) -> None:
    with pytest.raises(DataError, match=f"{name} needs a data path"):
        load_dataset(name, input_size=32)


@pytest.mark.parametrize("name", ["cifar10", "imagefolder"])
def test_missing_path(name: str, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="does not exist") as err:
        load_dataset(name, data_dir=missing, input_size=32)
    assert str(missing) in str(err.value)


def test_cifar_folder_with_wrong_layout(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match="neither train/ and test/ class folders nor cifar-10-batches-py") as err:
        load_dataset("cifar10", data_dir=tmp_path, input_size=32)
    assert str(tmp_path) in str(err.value)


def test_cifar_folder_without_test(tmp_path: Path, cifar_members: dict[str, bytes]) -> None:
    root = write_tree(tmp_path / "cifar", {k: v for k, v in cifar_members.items() if k.startswith("train/")})
    with pytest.raises(DataError, match="has train/ but no test/") as err:
        load_dataset("cifar10", data_dir=root, input_size=32)
    assert str(root) in str(err.value)


def test_zip_without_layout(tmp_path: Path) -> None:
    archive_path = tmp_path / "flat.zip"
    with zipfile.ZipFile(archive_path, "w") as archive:
        archive.writestr("img/0001.jpg", b"x")
    with pytest.raises(DataError, match="no train/ or test/ class folders") as err:
        load_dataset("cifar10", data_dir=archive_path, input_size=32)
    assert str(archive_path) in str(err.value)


def test_file_that_is_not_a_zip(tmp_path: Path) -> None:
    fake = tmp_path / "cifar.zip"
    fake.write_bytes(b"this is plain text, not an archive")
    with pytest.raises(DataError, match="is not a zip archive") as err:
        load_dataset("cifar10", data_dir=fake, input_size=32)
    assert str(fake) in str(err.value)


def test_fit_square_resizes_shorter_side_and_crops_centre() -> None:
    from autoc.data.decode import fit_square

    columns = torch.arange(40, dtype=torch.uint8).view(1, 1, 40).expand(3, 20, 40)
    same_height = fit_square(columns, 20)  # shorter side already fits: crop only
    assert same_height.shape == (3, 20, 20)
    assert same_height[0, 0].tolist() == list(range(10, 30))
    halved = fit_square(columns, 10)
    assert halved.shape == (3, 10, 10)
    assert abs(int(halved[0, 0, 0]) - 10) <= 1 and abs(int(halved[0, 0, -1]) - 29) <= 1


def test_damaged_zip_member_is_named(tmp_path: Path, cifar_members: dict[str, bytes]) -> None:
    archive_path = tmp_path / "damaged.zip"
    with zipfile.ZipFile(archive_path, "w") as archive:  # stored: member bytes lie as-is in the file
        for name, data in cifar_members.items():
            archive.writestr(name, data)
    victim = sorted(cifar_members)[0]
    raw = bytearray(archive_path.read_bytes())
    at = raw.find(cifar_members[victim]) + 200
    raw[at] ^= 0xFF  # breaks the CRC of that member only
    archive_path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="cannot read member") as err:
        load_dataset("cifar10", data_dir=archive_path, input_size=32)
    assert victim in str(err.value) and str(archive_path) in str(err.value)


# --- selection split: training-pool items left out of train ----------------------------------


def rows(x: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in x}


def test_digits_selection_split_is_disjoint_from_train_and_leaves_the_rest_alone() -> None:
    plain = load_dataset("digits", input_size=8, max_train=500, max_val=100)
    split = load_dataset("digits", input_size=8, max_train=500, max_val=100, max_selection=200)
    assert torch.equal(split.train_x, plain.train_x) and torch.equal(split.val_x, plain.val_x)
    assert split.fingerprint == plain.fingerprint  # models trained on it, and their held-out scores, are the same
    assert split.selection_x.shape == (200, 3, 8, 8)
    assert np.bincount(split.selection_y.numpy()).min() >= 19  # stratified
    assert not rows(split.selection_x) & rows(split.train_x)
    assert not rows(split.selection_x) & rows(split.val_x)
    chosen = split.selection_as_val()
    assert torch.equal(chosen.val_x, split.selection_x) and torch.equal(chosen.train_x, split.train_x)
    assert chosen.fingerprint != split.fingerprint and chosen.train_fingerprint == split.train_fingerprint
    with pytest.raises(DataError, match="without a selection split"):
        plain.selection_as_val()


def test_a_selection_split_larger_than_the_pool_left_is_refused() -> None:
    with pytest.raises(DataError, match=r"max_selection=900 .* lower max_selection, or max_train"):
        load_dataset("digits", input_size=8, max_train=1000, max_selection=900)


@needs_cifar
def test_cifar_selection_split_comes_from_unused_training_images() -> None:
    plain = load_dataset("cifar10", data_dir=CIFAR_ZIP, input_size=32, max_train=200, max_val=50, seed=3)
    split = load_dataset("cifar10", data_dir=CIFAR_ZIP, input_size=32, max_train=200, max_val=50, seed=3,
                         max_selection=100)
    assert torch.equal(split.train_x, plain.train_x) and split.fingerprint == plain.fingerprint
    assert np.array_equal(np.bincount(split.selection_y.numpy()), [10] * 10)
    assert not rows(split.selection_x) & rows(split.train_x)
    assert str(CIFAR_ZIP.resolve()) in split.selection_as_val().fingerprint


def test_cifar_pickles_selection_split(tmp_path: Path) -> None:
    write_pickles(tmp_path / "cifar-10-batches-py")
    split = load_dataset("cifar10", data_dir=tmp_path, input_size=32, max_train=50, max_selection=30)
    assert split.selection_x.shape == (30, 3, 32, 32)
    assert not rows(split.selection_x) & rows(split.train_x)


def test_a_single_class_imagefolder_is_refused_by_the_search_in_one_line(tmp_path: Path, capsys) -> None:
    from autoc.cli import main

    root = tmp_path / "one"
    for split in ("train", "val"):
        (root / split / "apple").mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (16, 16), COLOURS["apple"]).save(root / split / "apple" / f"{i}.png")
    code = main(["search", "--budget-ms", "20", "--dataset", "imagefolder", "--data-dir", str(root),
                 "--runs-dir", str(tmp_path / "runs"), "--study", "one", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "has only one class (apple)" in err and "at least two class folders" in err
    assert not (tmp_path / "runs").exists()


# --- preprocessing ---------------------------------------------------------------------------


def test_digits_record_the_preprocessing_their_pixels_went_through(digits: DatasetSplit) -> None:
    pre = digits.preprocessing
    assert (pre.input_size, pre.channels, pre.colour, pre.pixel_max) == (digits.input_size, 3, "grey", 16.0)
    assert pre.mean == digits.mean and pre.std == digits.std and pre.class_names == digits.classes
    raw = torch.from_numpy(load_digits().images[:5]).float().unsqueeze(1).expand(-1, 3, -1, -1)
    made = torch.nn.functional.interpolate(raw, size=(pre.input_size,) * 2, mode="bilinear", align_corners=False,
                                           antialias=pre.antialias) / pre.pixel_max
    made = pre.normalise_(made)  # applied as recorded, raw digits land among the split's own images
    pool = torch.cat([digits.train_x, digits.val_x]).flatten(1)
    nearest = torch.cdist(made.flatten(1), pool, compute_mode="donot_use_mm_for_euclid_dist").min(1).values
    assert float(nearest.max()) < 1e-4


def test_imagefolder_records_folder_names_as_class_names(tmp_path: Path) -> None:
    split = load_dataset("imagefolder", data_dir=write_imagefolder(tmp_path / "shapes"), input_size=12)
    pre = split.preprocessing
    assert pre.class_names == split.classes and (pre.colour, pre.pixel_max, pre.antialias) == ("rgb", 255.0, True)


def test_preprocessing_round_trips_through_its_json_form(digits: DatasetSplit) -> None:
    from autoc.data.preprocessing import Preprocessing

    pre = digits.preprocessing
    assert Preprocessing.from_dict(json.loads(json.dumps(pre.to_dict()))) == pre
    with pytest.raises(DataError, match="one mean and std per channel"):
        Preprocessing.from_dict({**pre.to_dict(), "mean": [0.1]})
    with pytest.raises(DataError, match="malformed .*KeyError.*write it again with autoc export"):
        Preprocessing.from_dict({"input_size": 8})
