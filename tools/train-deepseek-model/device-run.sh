#!/usr/bin/env bash
# The accelerator-machine run behind the shipped tuneloop-deepseek-tiny.gguf: three variants of the selection-bias
# update rate side by side on one GPU (they are small), each with its console log, then everything packed into
# $OUT in pieces under the device tool's 16 MiB-per-file limit. Usage (repo root, data at .tmp/tinyshakespeare.txt):
#   OUT=/some/dir bash tools/train-deepseek-model/device-run.sh [time-limit-seconds]
set -u
LIMIT=${1:-380}
W=/tmp/ds-runs
mkdir -p "$W"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
run() { # name, extra args
  local name=$1; shift
  PYTHONUNBUFFERED=1 python3 tools/train-deepseek-model/train.py --data .tmp/tinyshakespeare.txt \
    --out-dir "$W/$name" --time-limit "$LIMIT" "$@" >"$W/$name.console.txt" 2>&1
  echo "$name exit $?" >>"$W/exits.txt"
}
run g1e-3 --bias-update-rate 1e-3 &
run g1e-4 --bias-update-rate 1e-4 &
run g1e-3-half --bias-update-rate 1e-3 --bias-update-until 0.5 &
wait
cat "$W/exits.txt"
for f in "$W"/*.console.txt; do echo "== $f"; grep -E "^step|routing|mtp|training:|wrote|greedy|early" "$f" | tail -30; done
tar -C "$W" -czf /tmp/ds-runs.tgz .
split -b 15M -d /tmp/ds-runs.tgz "$OUT/ds-runs.tgz.part"
ls -la "$OUT"
