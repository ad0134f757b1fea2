#!/usr/bin/env bash
# Installs a Reel bundle (made by `make bundle`) on a CUDA host that has Python 3.12 and PyTorch, without internet.
#
#   ./install.sh [PREFIX]        (default PREFIX: ./reel-install)
#
# Afterwards: PREFIX/bin/reel, and the engine's dependencies in PREFIX/site-packages (a --target directory, so the
# host's own Python stays untouched). PREFIX/env.sh sets REEL_PYTHON, REEL_ENGINE and PYTHONPATH for `reel`.
# PYTHON (default python3) picks the interpreter that has PyTorch.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PREFIX=$(mkdir -p "${1:-reel-install}" && cd "${1:-reel-install}" && pwd)
PYTHON=${PYTHON:-python3}
mkdir -p "$PREFIX/bin" "$PREFIX/wheels" "$PREFIX/site-packages"

mkdir -p "$PREFIX/lib"
xz -dc "$HERE/reel.xz" > "$PREFIX/lib/reel"
chmod +x "$PREFIX/lib/reel"
# `reel` uses the host's SQLite when it has one, else the bundled copy.
if [ -f "$HERE/libsqlite3.so.0.xz" ]; then xz -dc "$HERE/libsqlite3.so.0.xz" > "$PREFIX/lib/bundled-libsqlite3.so.0"; fi
cat > "$PREFIX/bin/reel" <<EOF
#!/bin/sh
if ! ldconfig -p 2>/dev/null | grep -q 'libsqlite3.so.0 ' && [ -f "$PREFIX/lib/bundled-libsqlite3.so.0" ]; then
    mkdir -p "$PREFIX/lib/sqlite" && ln -sf "$PREFIX/lib/bundled-libsqlite3.so.0" "$PREFIX/lib/sqlite/libsqlite3.so.0"
    export LD_LIBRARY_PATH="$PREFIX/lib/sqlite\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
fi
exec "$PREFIX/lib/reel" "\$@"
EOF
chmod +x "$PREFIX/bin/reel"

# Zip each unpacked wheel back into a .whl (same files, so the RECORD hashes hold) and install them with pip.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -C "$work" -xJf "$HERE/wheels.tar.xz"
"$PYTHON" - "$work" "$PREFIX/wheels" <<'PY'
import os, sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
for name in sorted(os.listdir(src)):
    root = os.path.join(src, name)
    with zipfile.ZipFile(os.path.join(dst, name), "w", zipfile.ZIP_DEFLATED) as whl:
        for folder, _, files in os.walk(root):
            for f in sorted(files):
                path = os.path.join(folder, f)
                whl.write(path, os.path.relpath(path, root))
PY
"$PYTHON" -m pip install -q --no-index --no-deps --target "$PREFIX/site-packages" "$PREFIX"/wheels/*.whl

tar -C "$PREFIX" -xJf "$HERE/engine.tar.xz"
cat > "$PREFIX/env.sh" <<EOF
export REEL_PYTHON=$(command -v "$PYTHON")
export REEL_ENGINE=$PREFIX/engine
export PYTHONPATH=$PREFIX/site-packages:$PREFIX/engine\${PYTHONPATH:+:\$PYTHONPATH}
export PATH=$PREFIX/bin:\$PATH
EOF
"$PYTHON" -c "import sys; sys.path[:0] = ['$PREFIX/site-packages', '$PREFIX/engine']; import diffusers, av, torch, reel_engine; print('reel bundle installed: diffusers', diffusers.__version__, 'PyAV', av.__version__, 'torch', torch.__version__)"
echo "source $PREFIX/env.sh, then: reel serve --model DIR_OR_random:ti2v-5b --devices auto"
