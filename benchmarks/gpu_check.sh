#!/bin/bash
# The GPU checks of one short lease, in one command: the CUDA tests, CPU-vs-CUDA step times side by side
# (benchmarks.scaling.train_device), then reference-recipe seeds 0..SEEDS-1 of the ranking spread on the GPU in
# PROCS processes until BUDGET seconds have passed (cached ones are skipped; new ones come back as a tarball
# to unpack into benchmarks/reference-cache). Results land in $OUT (default runs/gpu_check).
# Carry the wheels of missing packages in .whl/ and the CIFAR-10 zip in .gpu/: it is moved to the path
# this checkout's data fingerprints name, so cache keys match those made here.
#   BUDGET=530 bash benchmarks/gpu_check.sh        (DEV=cpu TD_STEPS=5 RS_STEPS=5 ... for a dry run)
START=$SECONDS; BUDGET=${BUDGET:-540}; OUT=${OUT:-runs/gpu_check}; mkdir -p $OUT
export PYTHONUNBUFFERED=1
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site:$PWD
fi
ZIP=/work/shared/data/cifar10-jpeg.zip   # the path this checkout's data fingerprints name
if [ ! -f $ZIP ]; then mkdir -p /work/shared/data && mv .gpu/cifar10-jpeg.zip $ZIP; fi
nvidia-smi -L 2>&1 | tee $OUT/env.txt
python3 -c "import torch, optuna; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '', 'optuna', optuna.__version__)" 2>&1 | tee -a $OUT/env.txt
DEV=${DEV:-cuda}
echo "== GPU tests ($((SECONDS-START)) s)"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/evaluate/test_train_device.py tests/evaluate/test_reference_recipe.py 2>&1 | tee $OUT/pytest.log | tail -15
D="--data $ZIP --max-train 10000 --max-val 2500 --proper-augment"
echo "== train_device ($((SECONDS-START)) s)"
timeout 200 python3 -m benchmarks.scaling.train_device $D --proper-steps ${TD_STEPS:-200} --supernet-steps ${TD_SN:-30} \
  --supernet-lr 0.02 --supernet-augment --random-subnets 1 --threads 2 --devices cpu $DEV --out $OUT/train_device.json 2>&1 | grep -v "it/s\]" | tail -8
echo "== reference seeds on $DEV ($((SECONDS-START)) s)"
touch /tmp/marker; sleep 1
PROCS=${PROCS:-10}; SEEDS=${SEEDS:-8}
for k in $(seq 0 $((PROCS-1))); do
  picks=$(seq $k $PROCS 19 | tr '\n' ' ')
  left=$((BUDGET - (SECONDS - START))); [ $left -lt 30 ] && break
  timeout $left python3 -m benchmarks.estimate.reference_noise $D --proper-steps ${RS_STEPS:-1800} --threads 1 --train-device $DEV \
    --pick $picks --seeds $SEEDS --out /tmp/rn_$k.json > /tmp/rn_$k.log 2>&1 &
done
wait
cat /tmp/rn_*.log | grep -E "seed [0-9]+: " | grep -v cached | sort | tee $OUT/reference_runs.txt | tail -30
echo "new runs: $(wc -l < $OUT/reference_runs.txt)"
tail -3 /tmp/rn_0.log
(cd benchmarks/reference-cache && find . -name 'reference-*.json' -newer /tmp/marker | tar czf $OUT/reference-new.tar.gz -T -)
echo "== done ($((SECONDS-START)) s)"
