#!/usr/bin/env bash
# CI: the wheel works on its own. Build it from a copy of the sources, install it into a fresh
# venv (torch and the other dependencies come from the system site-packages), and run the main
# command's first trial from an empty directory: the default search space and device profile, the
# JSON Schemas and the pack runner must come from inside the installed package, not from a checkout.
# Everything happens under one temp directory, removed at the end; the checkout is not written.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(cd "$(mktemp -d)" && pwd -P)"
trap 'rm -rf "$work"' EXIT
unset PYTHONPATH  # nothing may import the checkout's copy

echo "wheel check: building the wheel in $work"
mkdir "$work/src"
# the files the build reads, tracked or new (a file deleted but not yet committed is skipped)
(cd "$repo" && git ls-files -z --cached --others --exclude-standard -- pyproject.toml README.md autoc \
    | tar -cf - --null --ignore-failed-read -T - 2>/dev/null) | tar -xf - -C "$work/src"
python -m pip wheel -q --no-deps --no-build-isolation -w "$work/dist" "$work/src"
wheel="$(ls "$work"/dist/autoc-*.whl)"
python - "$wheel" <<'EOF'
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
needed = ["autoc/space/spaces/mbv2-cifar.yaml", "autoc/space/spaces/fbnet-cifar.yaml",
          "autoc/schemas/device_profile.schema.json", "autoc/schemas/policy.schema.json",
          "autoc/latency/pack_runner.py.txt", "autoc/latency/profiles/pixel2.json",
          "autoc/latency/profiles/pixel3.json", "autoc/latency/profiles/raspi4.json"]
missing = [n for n in needed if n not in names]
sys.exit(f"wheel check: the wheel lacks {missing}; add them to [tool.setuptools.package-data]" if missing else 0)
EOF

python -m venv --system-site-packages "$work/venv"
"$work/venv/bin/python" -m pip install -q --no-deps --ignore-installed "$wheel"
mkdir "$work/run"
cd "$work/run"
found="$("$work/venv/bin/python" -c 'import autoc; print(autoc.__file__)')"
case "$found" in
    "$work/venv/"*) echo "wheel check: autoc imports from $found" ;;
    *) echo "wheel check: FAILED, the venv imports autoc from $found, not its own copy" >&2; exit 1 ;;
esac
export PATH="$work/venv/bin:$PATH"

# the default device's profile is shipped: nothing to calibrate, and autoc devices lists it
autoc devices | grep -q '^pixel3 *shipped *fbnet-cifar' || { echo "wheel check: FAILED, no shipped pixel3" >&2; exit 1; }
# a budget above the whole space, so that the single trial is trained (at 20 ms the first one is over)
autoc search --budget-ms 50 --trials 1 --teacher-steps 5 --finetune-steps 2 --max-train 256 --max-val 128 \
    --no-progress
policy="$(ls runs/*/best_policy.json)"
# the search ran on the shipped default space and device profile, and its policy rebuilds
python - "$policy" "$work/venv/" <<'EOF2'
import json, sys
import autoc
data = json.load(open(sys.argv[1]))
space, device = data["space"], data["device"]
if space["name"] != "fbnet-cifar" or not space["source"].startswith(sys.argv[2]) or device != "pixel3":
    sys.exit(f"wheel check: FAILED, the search used space {space} and device {device!r}")
autoc.load_policy(sys.argv[1]).build_model()
print(f"wheel check: space {space['name']} from {space['source']}, device {device}; the policy rebuilds")
EOF2
# a pack carries the runner (package data); a tiny space of the user's, given by path, keeps it quick
printf '%s\n' 'name: tiny' 'input_size: 8' 'stem: {width: 8, stride: 1}' \
    'stages: [{depth: 1, width: 8, stride: 1, kernel: 3, expansion: 1}]' > tiny.yaml
autoc calibrate --device phone --export-pack pack --space tiny.yaml --networks 4 --held-out 1 >/dev/null
test -s pack/run_pack.py
echo "wheel check: passed in ${SECONDS} s"
