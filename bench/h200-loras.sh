#!/usr/bin/env bash
# On a CUDA host without internet: installs the engine from dist/ (`make bundle`, or an engine-only
# `BUNDLE_REEL=/bin/true scripts/make-bundle.sh`) into /tmp/reel-install, then runs bench/loras.py with the
# arguments given, writing into $OUT (default bench-out).
#   bench/h200-loras.sh --model random:t2v-a14b --label t2v --cases lightning,switches
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/bench-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if [ ! -x /tmp/reel-install/bin/python ] && [ ! -f /tmp/reel-install/env.sh ]; then
    dist/install.sh /tmp/reel-install > "$OUT/install.log" 2>&1 || { cat "$OUT/install.log"; exit 1; }
fi
# shellcheck disable=SC1091
source /tmp/reel-install/env.sh
# This tree's engine, so a change to it needs no new bundle (the bundle's wheels are what it adds).
export PYTHONPATH=$PWD/engine${PYTHONPATH:+:$PYTHONPATH}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/gpu.txt"
python3 bench/loras.py --out "$OUT" "$@" 2> >(tee "$OUT/loras-stderr.log" >&2) | tee -a "$OUT/loras-report.md"
