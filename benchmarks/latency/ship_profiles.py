"""Make the device profiles autoc ships (autoc/latency/profiles/NAME.json) again from their data.

    python -m benchmarks.latency.ship_profiles                  # every shipped device
    python -m benchmarks.latency.ship_profiles --device pixel3 --data-dir ../shared/data

pixel2, pixel3 and raspi4 are fitted as `autoc calibrate --device NAME --from-networks CSV --space
SPACE --fit N` fits one; note10 reads Once-for-All's five Note10 tables as `autoc calibrate --ofa-lut`
does; each with the recipe, split seed and fit size of autoc.latency.shipped.SHIPPED: the same data
gives the same tables and validation figures. Their held-out figures are recorded for the latency
results page (benchmarks/results/latency.ship_profiles--*.json).
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from autoc.latency.profile import save_profile
from autoc.latency.shipped import SHIPPED, ShippedRecipe, build_shipped, shipped_dir
from autoc.latency.validate import format_figures

from benchmarks.common import record_result

DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data"


def main(argv: list[str] | None = None) -> int:
    """Fit and write the shipped profiles the arguments name."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", action="append", choices=sorted(SHIPPED), help="only these (default: all)")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR, help="folder holding the recipes' data files")
    parser.add_argument("--out-dir", type=Path, default=shipped_dir(), help="where the profiles go")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    figures = {}
    for device in args.device or sorted(SHIPPED):
        recipe = SHIPPED[device]
        profile = build_shipped(recipe, data_dir=args.data_dir)
        path = args.out_dir / f"{device}.json"
        save_profile(profile, path)
        path.chmod(0o644)  # package data: readable by whoever installs the wheel (the temp file was 0600)
        print(f"wrote {path}: {len(profile.blocks)} blocks, correction {profile.correction.describe()}")
        held = profile.validation
        if not held.get("n"):  # a table without whole networks (OFA's) has no held-out figures
            continue
        print(format_figures(dict(held), title=device))
        figures[f"{device}: held out / within ±10% (%) / MAPE (%) / Kendall tau"] = (
            f"{held['n']} / {100 * held['within_10pct']:.1f} / {held['mape_pct']:.2f} / {held['kendall_tau']:.3f}")
    if args.device is None:  # a record of every shipped profile, never of some
        fit = {recipe.fit for recipe in SHIPPED.values() if isinstance(recipe, ShippedRecipe)}
        record_result("latency.ship_profiles", f"fbnet-fit{'-'.join(map(str, sorted(fit)))}",
                      title="The shipped device profiles on the FBNet networks they were not fitted on",
                      figures=figures, note="Fitted on a seeded 1,000 of the 5,000 HW-NAS-Bench FBNet networks "
                      "per device column, validated on the other 4,000. pixel3 and raspi4 are additive columns of "
                      "the HW-NAS-Bench table; pixel2 holds real end-to-end timings.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
