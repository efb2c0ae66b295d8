#!/bin/sh
# What the image runs, run here (no container runtime on CI): the install script's two steps into
# a temporary directory, then the installed command's help and a complete demo round trip.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/interlink-image.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

start=$(date +%s)
"$here/install.sh" wheels "$root" "$work/wheels"
"$here/install.sh" install "$work/wheels" "$work/venv"
installed=$(date +%s)
"$work/venv/bin/interlink" --help >/dev/null
# The demo writes its store under a temporary directory: run it away from the checkout.
(cd "$work" && "$work/venv/bin/interlink" demo >"$work/demo.log" 2>&1) || {
    cat "$work/demo.log"
    echo "image-check: interlink demo failed" >&2
    exit 1
}
if grep -q -e "Traceback (most recent call last)" -e "Exception ignored" "$work/demo.log"; then
    cat "$work/demo.log"
    echo "image-check: interlink demo printed a traceback" >&2
    exit 1
fi
echo "image-check: installed from wheels in $((installed - start)) s, demo ok in $(($(date +%s) - installed)) s"
