#!/usr/bin/env bash
# A second, short run on a lent GPU machine: the paper's 3D path end to end on CUDA (prepare at the
# kits19-paper spacing, masked 3D pretraining, 3D U-Net training from the pretrained encoder, both
# compiled and in bf16, then evaluation), on the small phantom in .gpu/phantom. Needs .whl/ as
# benchmarks/speed/gpu_run.sh does. Writes $OUT/paper3d.log.
set -u
OUT=${OUT:-/tmp/sidepair-gpu}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
{
  set -x
  W=/tmp/paper3d
  rm -rf $W
  python3 -m sidepair prepare --data .gpu/phantom --out $W/store --preset kits19-paper
  timeout 120 python3 -m sidepair pretrain --store $W/store --out $W/pre --preset kits19-paper --epochs 2 \
    --pairs-per-epoch 32 --val-pairs 16 --compile --device cuda
  cat $W/pre/metrics.jsonl
  timeout 120 python3 -m sidepair train --store $W/store --out $W/seg --preset kits19-paper \
    --init $W/pre/checkpoint_best.pt --epochs 2 --samples-per-epoch 16 --compile --device cuda
  cat $W/seg/metrics.jsonl
  timeout 60 python3 -m sidepair evaluate --run $W/seg --device cuda
  python3 -c "import json; print(json.load(open('$W/seg/run.json'))['transfer'])"
} > "$OUT/paper3d.log" 2>&1
tail -c 8000 "$OUT/paper3d.log"
