#!/usr/bin/env python
"""One archive of a build's results, for a reader to take away (issue 23, item 4).

``lid_results_archive.zip`` holds

- ``results/<claim>.json``: every results file exactly as the chapters wrote it (each with
  the parameters that reproduce it and every analysis record at full precision);
- ``records.csv``: one row per analysis record (:func:`lidutils.book.claims_page.records_table`);
- ``provenance.json``: the git commit the build ran from (and whether the working tree had
  uncommitted changes), the build's parameters, the date, Python, the platform and the
  version of every installed package;
- ``README.txt``: what the files are and how to read them back.

``scripts/build_book.py`` writes it into the claims page's downloads before the page is
rendered (the page links it); :func:`load` reads it back into the claims dict that
:func:`lidutils.book.claims_page.read_claims` returns for the results folder.

    python scripts/results_archive.py results/ out.zip     # by hand
"""
from __future__ import annotations

import datetime as _dt
import io
import json
import platform
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME = "lid_results_archive.zip"

README = """\
The LID book: results of one build
==================================

results/<claim>.json   every results file as the chapters wrote it: the claim, the paper's
                       value, the verdict, every analysis record (r, 95 % CI, p, n, power,
                       verdict ...) and "parameters", the notebook parameters that reproduce it
records.csv            one row per analysis record, the claim's fields alongside
provenance.json        git commit of the build, build parameters, date, Python, platform and
                       the version of every installed package

Read it back (Python, with lidutils installed):

    import zipfile, json
    z = zipfile.ZipFile("lid_results_archive.zip")
    claims = {n[len("results/"):-5]: json.loads(z.read(n)) for n in z.namelist()
              if n.startswith("results/") and n.endswith(".json")}
    from lidutils.book import claims_page
    records = claims_page.records_table(claims)

or: scripts/results_archive.py's load(path). Rerun a claim: papermill the notebook named in its
file ("notebook") with its "parameters", at the commit of provenance.json.
"""


def _git(*args):
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def provenance(params=None):
    """Where a build's results come from: commit, parameters, software."""
    from importlib import metadata

    pkgs = {}
    for d in metadata.distributions():
        name = d.metadata["Name"]
        if name:
            pkgs[name] = d.version
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_commit": _git("rev-parse", "HEAD"),
        "git_describe": _git("describe", "--always", "--dirty"),
        "git_dirty": None if status is None else bool(status),
        "repository": _repository(),
        "built_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "build_parameters": dict(params or {}),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": dict(sorted(pkgs.items(), key=lambda kv: kv[0].lower())),
    }


def _repository():
    try:
        import yaml

        return yaml.safe_load((ROOT / "_config.yml").read_text()).get("repository", {}).get("url")
    except Exception:  # noqa: BLE001 - provenance must never fail a build
        return None


def write(results_dirs, out_path, params=None):
    """Write the archive of the claim files in ``results_dirs`` to ``out_path`` (atomically).

    The files are stored as read (bytes), so :func:`load` gives back what
    :func:`lidutils.book.claims_page.read_claims` reads from the folders. Returns ``out_path``.
    """
    from lidutils.book import claims_page as cp
    from lidutils.cache import atomic_path

    dirs = [Path(results_dirs)] if isinstance(results_dirs, (str, Path)) else [Path(d) for d in results_dirs]
    claims = cp.read_claims(dirs)  # validates the claim files
    files = {}  # every results file (claims, validation ...): one folder -> results/, several -> results/<folder>/
    for d in dirs:
        prefix = "results/" if len(dirs) == 1 else f"results/{d.name}/"
        for p in sorted(d.glob("*.json")):
            files[prefix + p.name] = p.read_bytes()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    csv = io.StringIO()
    cp.records_table(claims).to_csv(csv, index=False)
    with atomic_path(out_path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for name, raw in files.items():
                z.writestr(name, raw)
            z.writestr("records.csv", csv.getvalue())
            z.writestr("provenance.json", json.dumps(provenance(params), indent=1, default=str))
            z.writestr("README.txt", README)
    out_path.chmod(0o644)  # a download of the site (the temporary file was private)
    return out_path


def load(path):
    """``{"claims", "files", "provenance"}`` of an archive written by :func:`write`: the claim
    dicts as :func:`lidutils.book.claims_page.read_claims` reads them from the build's results
    folder(s), every results file parsed (name -> dict) and the provenance."""
    import tempfile

    from lidutils.book import claims_page as cp

    with zipfile.ZipFile(path) as z, tempfile.TemporaryDirectory() as tmp:
        names = [n for n in z.namelist() if n.startswith("results/") and n.endswith(".json")]
        files = {n[len("results/"):]: json.loads(z.read(n)) for n in names}
        for n in names:
            z.extract(n, tmp)
        folders = sorted({str(Path(tmp, n).parent) for n in names})
        claims = cp.read_claims(folders)
        prov = json.loads(z.read("provenance.json"))
    return {"claims": claims, "files": files, "provenance": prov}


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: results_archive.py RESULTS_DIR OUT.zip")
    print(write(sys.argv[1], sys.argv[2]))
