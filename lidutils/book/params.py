"""Notebook parameters: the shared and per-notebook defaults, and the K each claim is tested at."""
from __future__ import annotations

import ast
import json
import os
from pathlib import Path

from lidutils.book import paper

#: Parameters shared by every claim notebook, with their defaults (the notebooks'
#: parameters cells must agree: tests/book/test_claims.py checks it).
SHARED_DEFAULTS = dict(
    tier="offline", zoo_grid="controlled", models=None,
    controls=["random:tf_efficientnet_lite0", "random:mobilenetv2_100"], n_images=300,
    layer="penultimate", space="pca300", n_pcs=300, method="pearson", n_boot=2000, n_perm=10000, seed=0,
    device="auto", cache_dir="data/cache", out_dir="results", data_dir=None, nsd_root=None,
)

#: Notebook-specific parameters (name -> default), recorded with the shared ones.
NOTEBOOK_DEFAULTS = {
    "01_generalization": {"degrade_photos": 100, "degrade_kinds": ["weight_noise", "blur"]},
    "02_model_model": {"k_align": 10},
    "03_model_brain": {"rois": None, "rdm_npz": None, "image_dir": None, "rsa_method": "spearman",
                       "nsd_subjects": [1], "degrade_photos": 100, "degrade_kinds": ["weight_noise", "blur"]},
    "04_scaling": {},
    "05_local_vs_global": {},
    "population": {},
}

#: Chapters whose parameters are their own (no population of the claim chapters): name -> defaults.
#: Where a name is shared with :data:`SHARED_DEFAULTS` its default agrees (tests/book/test_claims.py).
OWN_PARAMETERS = {
    "00_validation": dict(tier="offline", n_models=16, n_stimuli=400, seeds=2, n_sim=1000, n_boot=2000,
                          n_perm=10000, out_dir="results", seed=0),
    "06_intervention": dict(tier="offline", zoo_grid="controlled", k_local=50, n_pcs=300, method="pearson",
                            n_boot=2000, n_perm=10000, seed=0, device="auto", num_workers=2,
                            cache_dir="data/cache", out_dir="results", data_dir=None),
    "07_factorial": dict(tier="offline", zoo_grid="controlled", k_local=50, n_pcs=300, n_boot=2000, n_perm=10000,
                         seed=0, device="auto", num_workers=2, cache_dir="data/cache", out_dir="results",
                         data_dir=None),
}

#: The K sweep of every r-vs-K curve (clipped below N/4 per population; N/4 itself is added).
K_SWEEP = (5, 10, 20, 50, 100, 200, 500, 1000)

GLOBAL_FRACTION = 0.25  # LID at K >= N/4 counts as a global measure (C4)

MIN_N = 4


def parameters(namespace, notebook):
    """Every parameter of ``notebook`` taken from its namespace (for the results file).

    ``namespace`` is the notebook's ``globals()``; the names are
    :data:`SHARED_DEFAULTS` plus ``NOTEBOOK_DEFAULTS[notebook]`` (or the chapter's
    :data:`OWN_PARAMETERS`), so a results file
    records every parameter that can change it without anything typed by hand.
    Relative ``cache_dir`` / ``out_dir`` are relative to the book's root (the folder
    with ``_toc.yml``), so a notebook opened in ``notebooks/`` (``make lab``) uses the
    same caches and results as the book.
    """
    if notebook in OWN_PARAMETERS:
        names = list(OWN_PARAMETERS[notebook])
    elif notebook in NOTEBOOK_DEFAULTS:
        names = list(SHARED_DEFAULTS) + list(NOTEBOOK_DEFAULTS[notebook])
    else:
        raise ValueError(f"unknown notebook {notebook!r}; known: {sorted(NOTEBOOK_DEFAULTS) + sorted(OWN_PARAMETERS)}.")
    missing = [n for n in names if n not in namespace]
    if missing:
        raise ValueError(f"{notebook}: the parameters cell lacks {missing}; define them there.")
    params = {n: namespace[n] for n in names}
    root = book_root()
    for key in ("cache_dir", "out_dir"):  # relative to the book, wherever the kernel starts
        if root is not None and isinstance(params.get(key), str) and not Path(params[key]).is_absolute():
            params[key] = os.path.relpath(Path(root, params[key]), Path.cwd())
    return params


def book_root():
    """The repository root (the folder holding ``_toc.yml`` and ``notebooks/``) above the working directory."""
    for d in [Path.cwd(), *Path.cwd().parents]:
        if (d / "_toc.yml").is_file() and (d / "notebooks").is_dir():
            return d
    return None


def notebook_parameter_defaults(path):
    """``{name: default}`` of the cell tagged ``parameters`` of a notebook file (parsed, not run)."""
    nb = json.loads(Path(path).read_text())
    for cell in nb["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse("".join(cell["source"]))
            return {t.id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                    for t in node.targets if isinstance(t, ast.Name)}
    raise ValueError(f"{path}: no cell tagged 'parameters'.")


def claim_k(claim, n_stimuli):
    """K of a claim's primary analysis for ``n_stimuli`` points (stated in each record).

    The paper's K (:data:`lidutils.book.paper.PAPER`: 50, or 1000 for the brain) when it
    lies below ``n_stimuli / 4``; otherwise the largest K of :data:`K_SWEEP` below
    ``n_stimuli / 4`` (a K at or above N/4 is a global measure, see :func:`k_grid`).
    """
    k = int(paper.PAPER[claim].get("k") or paper.PROTOCOL["k_model"])
    allowed = [kk for kk in K_SWEEP if kk < GLOBAL_FRACTION * n_stimuli]
    if not allowed:
        raise ValueError(f"{n_stimuli} stimuli are too few for a local K (need > {4 * K_SWEEP[0]}).")
    return k if k in allowed else max(allowed)


def k_grid(n_stimuli):
    """The r-vs-K sweep for ``n_stimuli`` points: K of :data:`K_SWEEP` below N/4, then K = N/4 (global)."""
    local = [k for k in K_SWEEP if k < GLOBAL_FRACTION * n_stimuli]
    return local + [k_global(n_stimuli)]


def k_global(n_stimuli):
    """The large-K "global" LID of claim C4: K = floor(N/4)."""
    return int(GLOBAL_FRACTION * n_stimuli)
