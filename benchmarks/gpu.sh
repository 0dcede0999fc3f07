#!/usr/bin/env bash
# One GPU, under 5 minutes: check every fused path against its reference (forward and backward, per block) and
# time both, then time the main blocks with `multiseq bench` on the GPU. Writes everything to one folder:
#
#   bash benchmarks/gpu.sh                 # -> benchmarks/gpu-results/<UTC date>/{info,fused,bench}.{json,txt,md}
#   OUT=/tmp/gpu bash benchmarks/gpu.sh    # elsewhere
#
# Exit status: 0 all parity checks passed; 1 a parity check failed; 3 no CUDA device; 4 setup failed.
# Every step has its own time limit, so a hung kernel costs its step, not the whole run; each step's exit code
# is written to status.txt. Never run in CI (there is no GPU there); its results are recorded in
# benchmarks/README.md with the date and the device.
set -u -o pipefail
cd "$(dirname "$0")/.."

PY=${PY:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 MULTISEQ_KERNELS=auto
OUT=${OUT:-benchmarks/gpu-results/$(date -u +%Y%m%dT%H%MZ)}
mkdir -p "$OUT"
START=$(date +%s)
note() { echo "[gpu.sh +$(( $(date +%s) - START ))s] $*" | tee -a "$OUT/status.txt"; }

# 0. The package importable and a CUDA device present.
if ! "$PY" -c "import multiseq" 2>/dev/null; then
  note "installing multiseq into $PY"
  "$PY" -m pip install -q -e . || { note "setup failed"; exit 4; }
fi
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 3)"; then
  note "no CUDA device visible to torch: nothing measured"
  exit 3
fi
"$PY" -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))" | tee "$OUT/device.txt"

# 1. What the dispatcher can use here, and why not where it cannot (about 10 s).
timeout 60 "$PY" -m multiseq.cli info --json > "$OUT/info.json"
note "info: exit $?"

# 2. Every block: fused (MULTISEQ_KERNELS=auto) vs reference (off) vs float64 reference, forward and backward,
#    lengths that break block boundaries and a long one; then both timed (about 2.5 min at most).
timeout 170 "$PY" -m multiseq.bench.fused --device cuda --lengths 1000,4097,16384 --width 256 --batch 2 \
  --budget 140 --json "$OUT/fused.json" 2>&1 | tee "$OUT/fused.txt"
FUSED=${PIPESTATUS[0]}
note "fused parity and timing: exit $FUSED (0 = all parity checks passed)"

# 3. The issue's blocks on the GPU, side by side with both attention baselines (about 1.5 min at most).
timeout 110 "$PY" -m multiseq.cli bench --device cuda \
  --blocks local,s4d,mega_chunk,ls,contextpool+local --lengths 4096,16384 --mode fwdbwd --threads 1 \
  --timeout 40 --budget 80 --min-time 0.2 --json "$OUT/bench.json" --markdown "$OUT/bench.md" \
  2>&1 | tee "$OUT/bench.txt"
note "bench: exit ${PIPESTATUS[0]}"

note "done; results in $OUT"
[ "$FUSED" = 0 ] && exit 0
exit 1
