#!/usr/bin/env bash
# make test-arm: the broker-free part of the suite on aarch64 (a Raspberry Pi's userland), run
# under qemu-aarch64-static in a sysroot made from Debian's own arm64 packages.
#
# Everything comes from the package registries this machine already uses: Debian's packages
# (through the machine's own apt sources) and PyPI's manylinux aarch64 wheels. The sysroot and
# the wheels are cached under .cache/arm64 (QAS_ARM_CACHE); delete it to rebuild.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
CACHE=${QAS_ARM_CACHE:-$ROOT/.cache/arm64}
SYSROOT=$CACHE/sysroot
SITE=$CACHE/site
PY=$SYSROOT/usr/bin/python3.11
HOST_PY=${HOST_PY:-$ROOT/.venv/bin/python}

say() { printf '[test-arm] %s\n' "$*" >&2; }

# 1. the host tools: qemu-user-static runs aarch64 programs without binfmt; the cross compiler
#    builds the C codecs
need=()
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
if ((${#need[@]})); then
  if [ "$(id -u)" != 0 ]; then say "needs root to install ${need[*]} (apt-get)"; exit 1; fi
  say "installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# 2. the sysroot: Debian 12's python3.11 and the libraries it and the wheels link against
DEBS=(libc6 libgcc-s1 libstdc++6 zlib1g libexpat1 libffi8 libssl3 libbz2-1.0 liblzma5
      libuuid1 libtinfo6 libncursesw6 libreadline8 libsqlite3-0 libcrypt1 libdb5.3 libnsl2
      libtirpc3 libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libcom-err2 libkeyutils1
      python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libpython3.11-dev
      libpython3.11)
if [ ! -x "$PY" ]; then
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    if [ "$(id -u)" != 0 ]; then say "needs root to add the arm64 architecture to dpkg"; exit 1; fi
    say "adding the arm64 architecture to dpkg and updating the package lists"
    dpkg --add-architecture arm64
    apt-get update -qq
  fi
  say "building the arm64 sysroot in $SYSROOT"
  mkdir -p "$CACHE/debs" "$SYSROOT"
  (cd "$CACHE/debs" && apt-get download -qq "${DEBS[@]/%/:arm64}")
  for deb in "$CACHE"/debs/*.deb; do dpkg-deb -x "$deb" "$SYSROOT"; done
fi

# 3. the project's dependencies as aarch64 wheels (no source builds: what a Pi would install)
if [ ! -f "$SITE/.installed" ] || [ "$ROOT/pyproject.toml" -nt "$SITE/.installed" ] \
   || [ "$0" -nt "$SITE/.installed" ]; then
  say "installing aarch64 wheels into $SITE"
  rm -rf "$SITE"
  deps=$("$HOST_PY" - <<'PY'
import tomllib
p = tomllib.load(open("pyproject.toml", "rb"))["project"]
dev = [d for d in p["optional-dependencies"]["dev"] if d.split(">")[0].split("=")[0] in
       ("pytest", "hypothesis", "pytest-asyncio", "pyyaml", "matplotlib")]
print(" ".join(p["dependencies"] + dev))
PY
)
  # shellcheck disable=SC2086
  "$HOST_PY" -m pip install --quiet --disable-pip-version-check --target "$SITE" \
    --platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64 \
    --platform manylinux_2_28_aarch64 --platform manylinux_2_34_aarch64 \
    --implementation cp --python-version 3.11 --abi cp311 --abi abi3 --abi none \
    --only-binary=:all: $deps 2>&1 | { grep -v "^WARNING: Location" || true; }
  touch "$SITE/.installed"
fi

# 4. the C codecs, cross-compiled (the AVX2 kernel is x86-only; aarch64 gets the portable one,
#    which GCC vectorises with NEON at -O3); the suffix keeps it beside the x86-64 build
SO=shared/_fastcodecs.cpython-311-aarch64-linux-gnu.so
if [ ! -f "$SO" ] || [ shared/_fastcodecs.c -nt "$SO" ]; then
  say "cross-compiling $SO"
  aarch64-linux-gnu-gcc -O3 -ffp-contract=off -fno-trapping-math -fPIC -shared \
    -I"$SYSROOT/usr/include/python3.11" -I"$SYSROOT/usr/include" \
    shared/_fastcodecs.c -o "$SO"
fi

# Tests and commands start `sys.executable` as a child; without binfmt registration the kernel
# cannot run an aarch64 ELF, so the children get a wrapper that starts qemu (sitecustomize sets it)
BOOT=$CACHE/boot
mkdir -p "$BOOT"
cat > "$BOOT/python3" <<SH
#!/bin/sh
exec qemu-aarch64-static -L "$SYSROOT" "$PY" "\$@"
SH
chmod +x "$BOOT/python3"
cat > "$BOOT/sitecustomize.py" <<'PY'
import os
import sys

sys.executable = os.environ.get("QAS_ARM_PYTHON", sys.executable)
PY
export QAS_ARM_PYTHON=$BOOT/python3
run() { PYTHONPATH="$BOOT:$SITE:$ROOT" PYTHONDONTWRITEBYTECODE=1 qemu-aarch64-static -L "$SYSROOT" "$PY" "$@"; }

run -c 'import platform, numpy as np, shared.codecs as c, shared.precision as p
print("machine", platform.machine(), "python", platform.python_version())
print("KERNEL", c.KERNEL)
print("longdouble", p.longdouble_format())'

# 5. the top tier first: if it does not round-trip, nothing after it is worth running
run -m pytest -q -p no:cacheprovider tests/shared/test_top_tier.py

# 6. the broker-free suite: pure core, codecs, pool and store, decisions and replay, the observer
#    on recorded Pi trees, and the CLI on those
run -m pytest -q -p no:cacheprovider -m "not kafka" \
  tests/shared tests/services/applier/test_pool.py tests/services/applier/test_pool_ladder.py \
  tests/core/test_engine_client.py tests/core/test_store_lossless.py tests/core/test_store_range.py \
  tests/services/observer tests/app/test_replay.py
run -m app.cli decide --help >/dev/null
run -m app.cli decide
run -m app.cli replay sample --json | tail -n 1
run -m app.cli run --duration 5 --json | tail -n 2
# 7. the footprint a Pi pays (resident sizes compare with x86-64's; qemu's times mean nothing)
run -m bench.footprint
run -m bench.top_tier
say "passed on $(run -c 'import platform; print(platform.machine())')"
