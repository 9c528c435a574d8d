"""Device profiles shipped inside the package (``autoc/latency/profiles/NAME.json``): usable by name,
with nothing to calibrate. A user's calibrated profile of the same name (``runs/devices/NAME.json``)
comes first (``autoc.latency.device.find_profile``).

pixel2, pixel3 and raspi4 are fitted from published whole-network latencies by
``autoc.latency.from_networks``, as ``autoc calibrate --from-networks`` fits one; note10 is
Once-for-All's five Note10 lookup tables (``autoc.latency.ofa_lut``), as ``autoc calibrate
--ofa-lut`` reads them. ``SHIPPED`` says from which files, space, fit size and seed, so
``build_shipped`` (``python -m benchmarks.latency.ship_profiles``) makes the same profiles again.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autoc.latency.profile import DeviceProfile

PROFILES_DIR = "profiles"
# HW-NAS-Bench's FBNet-space latencies (CIFAR-100 input, 32x32): 5,000 networks timed on each device
FBNET_CSV = "fbnet_latency_pixel3_raspi4_pixel2.csv.gz"
# 1,000 fitting networks leave 4,000 held out; more fit hardly helps (pixel2: 72% -> 75% within
# 10% at 4,000) and the ridge fit's cost grows with the cube of the count
FBNET_FIT = 1000
SHIPPED_SEED = 0


@dataclass(frozen=True, kw_only=True)
class ShippedRecipe:
    """How one shipped profile is made: its data file (a name; the caller finds it), column,
    space, fit size and split seed."""

    device: str
    csv: str
    column: str
    space: str
    fit: int
    seed: int = SHIPPED_SEED


@dataclass(frozen=True, kw_only=True)
class OfaLutRecipe:
    """A shipped profile made of Once-for-All lookup tables (``autoc.latency.ofa_lut``): their
    folder and file names (the caller finds the folder), the space they must cover, and the
    date the profile records (fixed, so the same tables give the same file)."""

    device: str
    folder: str
    tables: tuple[str, ...]
    space: str
    created: str
    seed: int = SHIPPED_SEED


# Once-for-All's Samsung Note10 tables, one per input resolution of its MobileNetV3 space
NOTE10 = OfaLutRecipe(device="note10", folder="ofa-note10-lut",
                      tables=tuple(f"{r}_lookup_table.yaml" for r in (160, 176, 192, 208, 224)),
                      space="ofa-mbv3", created="2026-12-07T00:00:00+00:00")

SHIPPED: dict[str, ShippedRecipe | OfaLutRecipe] = {
    **{device: ShippedRecipe(device=device, csv=FBNET_CSV, column=f"{device}_ms", space="fbnet-cifar", fit=FBNET_FIT)
       for device in ("pixel2", "pixel3", "raspi4")},
    NOTE10.device: NOTE10,
}


def shipped_dir() -> Path:
    """The folder of the shipped profiles: package data, wherever autoc is installed."""
    # pip installs a wheel unpacked, so the package's data folder is a real directory
    return Path(str(resources.files("autoc.latency").joinpath(PROFILES_DIR)))


def shipped_path(device: str) -> Path | None:
    """The shipped profile of ``device``, or None when autoc ships none of that name."""
    path = shipped_dir() / f"{device}.json"
    return path if path.is_file() else None


def shipped_devices() -> list[str]:
    """Names of the shipped profiles, sorted."""
    folder = shipped_dir()
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def build_shipped(recipe: ShippedRecipe | OfaLutRecipe, *, data_dir: Path, created: str | None = None) -> "DeviceProfile":
    """The profile ``recipe`` describes, made from the files it names under ``data_dir``."""
    from autoc.space import load_space

    space = load_space(recipe.space)
    if isinstance(recipe, OfaLutRecipe):
        from autoc.latency.ofa_lut import ofa_profile

        return ofa_profile([Path(data_dir) / recipe.folder / name for name in recipe.tables], device=recipe.device,
                           space=space, seed=recipe.seed, created=created or recipe.created)
    from autoc.latency.from_networks import profile_from_csv

    return profile_from_csv(Path(data_dir) / recipe.csv, device=recipe.device, space=space, column=recipe.column,
                            fit=recipe.fit, seed=recipe.seed, created=created)
