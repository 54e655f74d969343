#!/usr/bin/env sh
# Rebuild wordcount.wasm (Debian: apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32).
set -eu
cd "$(dirname "$0")"
${CLANG:-clang} --target=wasm32-wasi --sysroot=${WASI_SYSROOT:-/usr} -O2 -Wall -Wextra -Wno-unused-function \
    -o wordcount.wasm wordcount.c -Wl,--strip-all
echo "built $(pwd)/wordcount.wasm ($(wc -c < wordcount.wasm) bytes)"
