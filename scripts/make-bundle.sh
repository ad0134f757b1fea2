#!/usr/bin/env bash
# `make bundle`: dist/ holds everything a CUDA host with Python 3.12 and PyTorch needs to run Reel without internet:
#   reel.xz         the `reel` binary: a static-stdlib release build, stripped, xz -9e
#   wheels.tar.xz   the engine's dependencies such a host may lack (diffusers, PyAV and what they need beyond
#                   PyTorch and transformers), as unpacked wheels: a wheel is a deflate zip, which xz cannot shrink;
#                   its files can. install.sh zips them back into byte-identical wheel contents for pip.
#   engine.tar.xz   the reel_engine package
#   install.sh      installs the three into a prefix
# The whole folder must stay under 60 MiB (checked at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
PY_VERSION=${BUNDLE_PYTHON_VERSION:-3.12}
PLATFORM=${BUNDLE_PLATFORM:-manylinux_2_28_x86_64}
LIMIT_MIB=60
DIST=dist
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
rm -rf "$DIST" && mkdir -p "$DIST"

if [ -n "${BUNDLE_REEL:-}" ]; then
    echo "== reel: $BUNDLE_REEL (BUNDLE_REEL)"
    cp "$BUNDLE_REEL" "$STAGE/reel"
else
    echo "== reel: static release build"
    swift build -c release --static-swift-stdlib --scratch-path .build-release --product reel
    cp "$(swift build -c release --static-swift-stdlib --scratch-path .build-release --show-bin-path)/reel" "$STAGE/reel"
fi
strip "$STAGE/reel"
xz -9e -T2 -c "$STAGE/reel" > "$DIST/reel.xz"
# GRDB links the system SQLite dynamically; a GPU host's minimal image may lack it, so a copy comes along.
sqlite=$(ldd "$STAGE/reel" | awk '/libsqlite3/ {print $3}')
if [ -n "$sqlite" ]; then xz -9e -c "$sqlite" > "$DIST/libsqlite3.so.0.xz"; fi

echo "== wheels for Python $PY_VERSION ($PLATFORM)"
mkdir -p "$STAGE/wheels" "$STAGE/unpacked"
# Only what a PyTorch + transformers host lacks; --no-deps keeps torch and its CUDA libraries out.
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY_VERSION" --platform "$PLATFORM" \
    --platform manylinux2014_x86_64 --platform any -d "$STAGE/wheels" \
    "diffusers==0.42.1" "av==18.1.0" "importlib_metadata>=8" "zipp>=3.20"
for wheel in "$STAGE"/wheels/*.whl; do
    name=$(basename "$wheel")
    mkdir -p "$STAGE/unpacked/$name"
    python3 -m zipfile -e "$wheel" "$STAGE/unpacked/$name"
done
tar -C "$STAGE/unpacked" -cf - . | xz -9e -T2 > "$DIST/wheels.tar.xz"

echo "== engine"
tar -C . --exclude '__pycache__' --exclude '*.egg-info' -cf - engine/pyproject.toml engine/reel_engine engine/README.md \
    | xz -9 > "$DIST/engine.tar.xz"
cp scripts/bundle-install.sh "$DIST/install.sh"
chmod +x "$DIST/install.sh"

size=$(du -cb "$DIST"/* | tail -1 | cut -f1)
ls -l "$DIST"
echo "dist/: $((size / 1024 / 1024)) MiB ($size bytes; limit $LIMIT_MIB MiB)"
if [ "$size" -ge $((LIMIT_MIB * 1024 * 1024)) ]; then
    echo "dist/ is over $LIMIT_MIB MiB" >&2
    exit 1
fi
