#!/bin/sh
# The image's install steps, in one place: the Dockerfile runs them, and so does
# deploy/image/check.sh (make image-check) in a fresh venv, so what CI tests is what ships.
#
#   install.sh wheels  SOURCE_DIR WHEEL_DIR  build interlink and every dependency as wheels
#   install.sh install WHEEL_DIR  VENV       a venv with interlink from those wheels only
#
# PYTHON names the interpreter (default python3). The second step never reaches an index: a
# missing wheel fails the build stage instead of being fetched (or compiled) in the final one.
set -eu

PYTHON=${PYTHON:-python3}

usage() {
    echo "usage: $0 wheels SOURCE_DIR WHEEL_DIR | install WHEEL_DIR VENV" >&2
    exit 2
}

[ $# -eq 3 ] || usage
case $1 in
wheels)
    mkdir -p "$3"
    "$PYTHON" -m pip wheel --quiet --wheel-dir "$3" "$2"
    ;;
install)
    "$PYTHON" -m venv "$3"
    "$3/bin/python" -m pip install --quiet --no-index --find-links "$2" interlink
    # Nothing but the runtime needs pip inside the image's venv.
    "$3/bin/python" -m pip uninstall --quiet --yes pip
    ;;
*)
    usage
    ;;
esac
