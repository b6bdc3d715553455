#!/usr/bin/env python
"""Put the launch cell first in every chapter notebook (idempotent).

A reader who opens a chapter from the book's Colab button has no ``lidutils``; the
launch cell clones the book's repository (``repository.url`` / ``branch`` of
``_config.yml``), installs it with the project's own install steps
(``scripts/install.sh``, the same as ``make install`` and Binder's ``postBuild``) and
moves into the clone, where the notebooks' relative paths (``results/``, ``data/cache``)
mean what they mean in the book. The data of the offline tier are fetched on first use
(``lidutils.datasets``: pooch, SHA-256-pinned registry). Where ``lidutils`` imports
(``make lab``, Binder, papermill in the build and the tests) the cell does nothing.

The cell is tagged ``remove-cell`` (the book does not show it) and has the id
:data:`CELL_ID`; running this script again replaces it in place (its source is
:data:`SOURCE`, here) and changes nothing else.

    python scripts/launch_cell.py            # insert / update in notebooks/*.ipynb
    python scripts/launch_cell.py --check    # exit 1 if a notebook lacks the current cell
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
CELL_ID = "lidbook-launch"
TAGS = ["remove-cell", "launch"]

SOURCE = '''\
# Launch cell (hidden in the book): on Colab or any machine without `lidutils`, clone this book's
# repository, install it as `make install` does and work inside the clone. A no-op where lidutils imports.
import importlib.util, os, subprocess, sys
if importlib.util.find_spec("lidutils") is None:
    REPO, BRANCH = "{url}", "{branch}"
    if not os.path.isdir("lid-book"):
        subprocess.run(["git", "clone", "--depth", "1", "--branch", BRANCH, REPO, "lid-book"], check=True)
    subprocess.run(["sh", "lid-book/scripts/install.sh", sys.executable], check=True)
    os.chdir("lid-book")          # the notebooks' paths (results/, data/cache) are relative to the repository
    sys.path.insert(0, os.getcwd())
    if "numpy" in sys.modules:    # the install may have replaced a module this kernel already loaded
        print("Installed. Restart the runtime (Colab: Runtime > Restart session), then run all cells again.")
    print("Data of the offline tier are downloaded on first use (SHA-256-checked).")
elif os.path.isdir("lid-book/notebooks") and not os.path.isdir("notebooks"):
    os.chdir("lid-book")          # after a restart: back into the clone
'''


def cell_source(config=ROOT / "_config.yml"):
    """The launch cell's code for the repository named in ``_config.yml``."""
    repo = yaml.safe_load(Path(config).read_text()).get("repository", {})
    return SOURCE.format(url=repo["url"], branch=repo.get("branch", "main")).rstrip("\n")


def notebooks():
    return sorted((ROOT / "notebooks").glob("*.ipynb"))


def with_launch_cell(nb, source):
    """``nb`` with the launch cell first (in place); returns whether anything changed."""
    found = [i for i, c in enumerate(nb.cells) if c.get("id") == CELL_ID]
    cell = nbformat.v4.new_code_cell(source, id=CELL_ID, metadata={"tags": list(TAGS)})
    if found and found == [0]:
        old = nb.cells[0]
        if old.source == source and old.metadata.get("tags") == TAGS and old.cell_type == "code":
            return False
    for i in reversed(found):
        del nb.cells[i]
    nb.cells.insert(0, cell)
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="only report notebooks whose launch cell is missing or old")
    ap.add_argument("paths", nargs="*", help="notebooks (default: notebooks/*.ipynb)")
    args = ap.parse_args(argv)
    source = cell_source()
    stale = []
    for p in [Path(x) for x in args.paths] or notebooks():
        nb = nbformat.read(str(p), as_version=4)
        if with_launch_cell(nb, source):
            stale.append(p)
            if not args.check:
                Path(p).write_text(nbformat.writes(nb) + "\n")
    for p in stale:
        print(("missing or old launch cell: " if args.check else "launch cell written: ") + str(p))
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
