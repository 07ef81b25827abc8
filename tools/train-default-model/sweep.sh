#!/usr/bin/env bash
# The small hyper-parameter sweep that chose the shipped model's settings (README.md, "How the settings were chosen").
# Runs the configurations side by side on one GPU (a 5M-parameter model leaves most of it idle), prints each one's
# best validation loss, and copies the outputs of the best one to OUT (default ./sweep-out).
#
#   tools/train-default-model/sweep.sh [DATA] [OUT]
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${1:-../shared/data/tinyshakespeare.txt}
OUT=${2:-tools/train-default-model/sweep-out}
WORK=$(mktemp -d)
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
declare -A CFG=(
  [d10]="--dropout 0.1 --batch-size 64"
  [d20]="--dropout 0.2 --batch-size 64"
  [d30]="--dropout 0.3 --batch-size 64"
  [d20lr2]="--dropout 0.2 --batch-size 64 --lr 2e-3"
  [d30b32]="--dropout 0.3 --batch-size 32"
  [d20wd3]="--dropout 0.2 --batch-size 64 --weight-decay 0.3"
)
for name in "${!CFG[@]}"; do
  # shellcheck disable=SC2086
  python3 tools/train-default-model/train.py --data "$DATA" --out-dir "$WORK/$name" ${CFG[$name]} >"$WORK/$name.log" 2>&1 &
done
wait
mkdir -p "$OUT"
: >"$OUT/sweep.txt"
best=""; best_loss=""
for name in $(printf '%s\n' "${!CFG[@]}" | sort); do
  loss=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['best']['val_loss'])" "$WORK/$name/run.json" 2>/dev/null || echo nan)
  echo "== $name (${CFG[$name]}): best val loss $loss" | tee -a "$OUT/sweep.txt"
  cat "$WORK/$name.log" >>"$OUT/sweep.txt"
  if [[ $loss != nan ]] && { [[ -z $best ]] || python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)" "$loss" "$best_loss"; }; then
    best=$name; best_loss=$loss
  fi
done
echo "best: $best (${CFG[$best]}) val loss $best_loss" | tee -a "$OUT/sweep.txt"
cp "$WORK/$best"/* "$OUT/"
