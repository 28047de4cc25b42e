#!/bin/bash
# Kill `sidepair demo` with SIGKILL during its segmentation stage, check that no worker outlives it, rerun it,
# and check results.csv (one row per run, every run's epochs once). Optionally compare the test Dice with an
# uninterrupted demo's results.csv.
# Usage: scripts/kill_and_resume_demo.sh OUT [UNINTERRUPTED_RESULTS_CSV]
set -u
out=${1:?usage: $0 OUT [UNINTERRUPTED_RESULTS_CSV]}
reference=${2:-}
sidepair=${SIDEPAIR:-.venv/bin/sidepair}
python=${PYTHON:-.venv/bin/python}
rm -rf "$out"
"$sidepair" demo --out "$out" > "$out.first.log" 2>&1 &
pid=$!
while [ "$(ls "$out"/runs/*/eval_test/metrics.json 2>/dev/null | wc -l)" -lt 5 ]; do sleep 1; done
sleep 20  # inside the next runs
echo "killing $pid; finished runs: $(ls "$out"/runs/*/eval_test/metrics.json | wc -l); run folders: $(ls "$out"/runs | wc -l)"
kill -9 "$pid"
sleep 3
echo "sidepair processes left after the kill: $(pgrep -f "sidepair demo --out $out" | wc -l)"
t0=$(date +%s)
"$sidepair" demo --out "$out" > "$out.second.log" 2>&1
echo "rerun rc=$? in $(( $(date +%s) - t0 )) s; $(grep 'already finished' "$out.second.log")"
OUT="$out" REF="$reference" "$python" - <<'PY'
import csv, json, os
out, ref = os.environ["OUT"], os.environ["REF"]
rows = list(csv.DictReader(open(f"{out}/results.csv")))
print("results.csv rows:", len(rows), "distinct runs:", len({r["run"] for r in rows}))
bad = [r["run"] for r in rows
       if [json.loads(x)["epoch"] for x in open(f"{out}/runs/{r['run']}/metrics.jsonl")] != list(range(1, int(r["epochs"]) + 1))]
print("runs whose metrics.jsonl does not hold each epoch once:", bad)
if ref:
    base = {r["run"]: float(r["kidney_dice_mean"]) for r in csv.DictReader(open(ref))}
    same = sum(abs(base[r["run"]] - float(r["kidney_dice_mean"])) < 1e-6 for r in rows)
    print(f"test Dice equal (1e-6) to the uninterrupted demo: {same}/{len(rows)}")
PY
