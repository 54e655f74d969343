#!/usr/bin/env bash
# Re-sign every example plugin with the examples' own key (for maintainers).
#
#   examples/sign.sh                 # new throw-away key: rewrites examples/keys/examples.pub
#   examples/sign.sh --key KEY.pem   # sign with an existing private key instead
#
# The private key never lands in the repository: a generated one lives in a temporary
# directory that is removed on exit. Commit examples/keys/examples.pub and every
# examples/*/plugin.sig afterwards. Run it after any change to a file of an example
# (the signature covers every file of the plugin directory except __pycache__ and VCS dirs).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
promptline="${PROMPTLINE:-promptline}"
command -v "$promptline" >/dev/null || promptline="python -m promptline"

key=""
if [[ "${1:-}" == "--key" ]]; then
    key="${2:?--key needs a path to an ed25519 private key (.pem)}"
elif [[ $# -gt 0 ]]; then
    echo "usage: $0 [--key PRIVATE_KEY.pem]" >&2; exit 2
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if [[ -z "$key" ]]; then
    $promptline keys generate --name examples --dir "$tmp" >/dev/null
    key="$tmp/examples.pem"
    mkdir -p "$here/keys"
    cp "$tmp/examples.pem.pub" "$here/keys/examples.pub"
fi
pub="$(cat "$here/keys/examples.pub")"

for manifest in "$here"/*/plugin.yaml; do
    dir="$(dirname "$manifest")"
    find "$dir" -name __pycache__ -type d -prune -exec rm -rf {} +
    $promptline plugin sign "$dir" --key "$key" >/dev/null
    $promptline plugin verify "$dir" --trusted-key "$pub" >/dev/null
    echo "signed $(basename "$dir")"
done
echo "public key: $pub (examples/keys/examples.pub)"
