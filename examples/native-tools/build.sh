#!/bin/sh
# Builds libnative_tools.so with the system C compiler. Run from this directory.
set -eu
cd "$(dirname "$0")"
gcc -shared -fPIC -O2 -Wall -Wextra -Wno-unused-function -o libnative_tools.so native_tools.c
echo "built $(pwd)/libnative_tools.so"
