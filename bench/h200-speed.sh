#!/usr/bin/env bash
# One command on a CUDA host without internet: installs Reel from dist/ (`make bundle`) into /tmp/reel-install
# when dist/ is present, else from .carry/ (reel.xz, site312.tar.xz, libsqlite3.so.0), then runs
# bench/single_gpu.py with the arguments given (default: 50 steps, 2 videos, every part); its report is printed,
# saved as $OUT/report.md and appended to bench/RESULTS.md (copy that file back from the GPU host).
#   bench/h200-speed.sh --steps 50 --videos 2 --parts ceilings,baseline,reel,budget
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/bench-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if [ -f dist/install.sh ]; then
    dist/install.sh /tmp/reel-install > "$OUT/install.log" 2>&1 || { cat "$OUT/install.log"; exit 1; }
    # shellcheck disable=SC1091
    source /tmp/reel-install/env.sh
    REEL=/tmp/reel-install/bin/reel
else
    mkdir -p /tmp/reel-lib
    tar -xJf .carry/site312.tar.xz -C /tmp
    xz -dc .carry/reel.xz > /tmp/reel && chmod +x /tmp/reel
    cp .carry/libsqlite3.so.0 /tmp/reel-lib/
    export LD_LIBRARY_PATH=/tmp/reel-lib PYTHONPATH=/tmp/site312:$PWD/engine
    export REEL_PYTHON=$(command -v python3) REEL_ENGINE=$PWD/engine
    REEL=/tmp/reel
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/gpu.txt"
python3 bench/single_gpu.py --reel "$REEL" --out "$OUT" --write-results "$@" | tee "$OUT/report.md"
