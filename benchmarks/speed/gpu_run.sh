#!/usr/bin/env bash
# The one prepared run on a lent GPU machine (issue #7): step speed per preset and option, then the
# real commands on CUDA (prepare, train with 0 and 4 loader workers, train with --channels-last
# --compile, pretrain, predict on a 512 x 512 x 200 CT with its GPU memory).
#
# Expects, in the repository root: .whl/ (wheels of what the machine lacks: monai, pydantic and its
# parts, nibabel, typer) and .gpu/phantom (a small phantom, `sidepair phantom --cases 10 --shape 160 160 64`).
# Writes under $OUT: gpu_steps.json, e2e.log.
set -u
OUT=${OUT:-/tmp/sidepair-gpu}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import torch, monai, pydantic, nibabel; print('torch', torch.__version__, 'monai', monai.__version__, torch.cuda.get_device_name())" || exit 1

timeout 290 python3 benchmarks/speed/gpu_steps.py --json "$OUT/gpu_steps.json" --budget 250 --seconds 4

{
  set -x
  W=/tmp/e2e
  rm -rf $W
  python3 -m sidepair prepare --data .gpu/phantom --out $W/store --preset fast-2d
  for w in 0 4; do
    timeout 120 python3 -m sidepair train --store $W/store --out $W/seg_w$w --preset fast-2d --epochs 2 \
      --workers $w --device cuda
    cat $W/seg_w$w/metrics.jsonl
  done
  timeout 150 python3 -m sidepair train --store $W/store --out $W/seg_fast --preset fast-2d --epochs 2 \
    --workers 4 --channels-last --compile --device cuda
  cat $W/seg_fast/metrics.jsonl $W/seg_fast/run.json
  timeout 120 python3 -m sidepair pretrain --store $W/store --out $W/pre --preset fast-2d --epochs 2 \
    --workers 4 --device cuda
  cat $W/pre/metrics.jsonl
  timeout 120 python3 -m sidepair phantom --out $W/big --cases 1 --shape 512 512 200 --no-montage
  timeout 120 python3 - "$W" <<'EOF'
import sys, time, resource
from pathlib import Path
import numpy as np, torch
from sidepair.inference.predictor import Predictor, predict
w = Path(sys.argv[1])
t = time.perf_counter()
pred = Predictor.load(w / "seg_w4", "cuda")
img = predict(w / "big" / "case_00000" / "imaging.nii.gz", pred, device="cuda")
torch.cuda.synchronize()
print(f"predict 512x512x200 on CUDA: {time.perf_counter() - t:.1f} s (model load included, Python start not), "
      f"peak GPU {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB, peak RSS "
      f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB, shape {img.shape}, "
      f"labels {np.unique(np.asarray(img.dataobj)).tolist()}")
EOF
} > "$OUT/e2e.log" 2>&1
tail -c 6000 "$OUT/e2e.log"
