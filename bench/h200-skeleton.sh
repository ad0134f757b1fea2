#!/usr/bin/env bash
# The walking skeleton on a GPU host without internet: `reel generate` with the full-size random TI2V-5B
# (1280x704, 121 frames, 4 steps) and T2V-A14B (832x480, 81 frames, 4 steps), then PyAV reads the videos back.
# Expects, in the checkout: .carry/reel.xz (a static `reel`), .carry/site312.tar.xz (diffusers, PyAV and
# importlib_metadata installed for Python 3.12), .carry/libsqlite3.so.0. Results go to $OUT (default ./bench-out).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/bench-out}
mkdir -p "$OUT" /tmp/reel-lib
tar -xJf .carry/site312.tar.xz -C /tmp
xz -dc .carry/reel.xz > /tmp/reel && chmod +x /tmp/reel
cp .carry/libsqlite3.so.0 /tmp/reel-lib/
export LD_LIBRARY_PATH=/tmp/reel-lib PYTHONPATH=/tmp/site312 PYTHONUNBUFFERED=1
export REEL_PYTHON=$(command -v python3) REEL_ENGINE=$PWD/engine REEL_DATA_DIR=/tmp/reel-data
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt"
python3 -c "import torch, diffusers, av, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'diffusers', diffusers.__version__, 'transformers', transformers.__version__, 'av', av.__version__)" >> "$OUT/gpu.txt"
run() {  # name model size frames
  /usr/bin/time -v /tmp/reel generate --model "$2" --device cuda:0 --size "$3" --frames "$4" --steps 4 --seed 1 \
    --prompt "A red fox trotting through fresh snow at dawn" --negative-prompt "blurry, low quality" \
    --out "/tmp/out/$1" -v > "$OUT/$1.log" 2>&1 || { tail -40 "$OUT/$1.log"; return 1; }
  cp "/tmp/out/$1/job.json" "$OUT/$1-job.json"
  python3 - "/tmp/out/$1/video.mp4" > "$OUT/$1-probe.json" <<'PY'
import av, json, sys
with av.open(sys.argv[1]) as c:
    s = c.streams.video[0]
    f = list(c.decode(s))
    print(json.dumps({"frames": len(f), "width": f[0].width, "height": f[0].height, "codec": s.codec_context.name,
                      "pix_fmt": f[0].format.name, "fps": float(s.average_rate)}))
PY
  grep -E "worker ready|seconds:|Maximum resident" "$OUT/$1.log" || true
  cat "$OUT/$1-probe.json"
}
run ti2v random:ti2v-5b 1280x704 121
run a14b random:t2v-a14b 832x480 81
