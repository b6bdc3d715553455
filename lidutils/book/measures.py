"""Per-model measurements of the claim analyses, in the paper's space, cached by content and code.

Every claim notebook (and the synthetic worlds of the validation chapter) measures
its models through these functions and nothing else:

- :func:`project` — the representation space. ``"pca300"`` is the paper's: the top
  :math:`q = \\min(300, D, n_{train}-1)` principal components fitted on an 80 %
  training split of the stimuli (rows chosen by ``seed``), every stimulus projected
  on them; ``"raw"`` is the embedding as it is (a stated sensitivity analysis).
- :func:`lid_table` — mean local ID per model for several estimators (Levina–Bickel
  MLE, MOM, MADA) at every ``K`` of a list, plus TwoNN, from **one** neighbour
  search per representation.
- :func:`global_table` — participation ratio, effective rank, PCA-n90 and the
  spectral exponent in the same space.
- :func:`ridge_all_pairs` — the paper's model–model alignment: held-out ridge
  :math:`R^2` for every ordered pair, fitted with one SVD per source and fold for
  all targets at once (identical to
  :func:`lidutils.alignment.alignment_matrix` with ``metric="ridge"``).
- :func:`partner_scores` — a model's mean alignment with its partners (other
  design cells only; seed replicates of the same design are not partners), and the
  family-balanced variant (partners of *other* families only).
- :func:`brain_long` — RSA of every model with every subject's RDM, per region.
- :func:`cell_means` — the analysis unit: seed replicates averaged per design cell.

Caches
------
:func:`cached_frame` stores a DataFrame under ``cache_dir/measures/`` keyed by the
content of the inputs, the arguments **and the code** that computes it
(:func:`code_version`: an explicit per-measure version number plus a hash of the
source of the utility modules it runs and of this module's functions that compute it), so a fix to an estimator can never be answered
from a stale cache.
"""
from __future__ import annotations

import hashlib
import inspect
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from lidutils import _progress, alignment as A, global_dim as global_dim_module, lid as L
from lidutils import neighbors as knn_module, ridge as ridge_module
from lidutils._validation import duplicate_rows
from lidutils.alignment import check_ridge_args, fold_pcs, outer_folds
from lidutils.cache import computing, hash_key, load_npz, save_npz
from lidutils.global_dim import global_dims
from lidutils.neighbors import knn
from lidutils.ridge import pca_fit_transform, r2_weighted, ridge_cv_predict, ridge_predict
from lidutils.rsatools import rdm, rsa_many

SPACES = ("pca300", "raw")
ESTIMATORS = ("mle", "mom", "mada")
TRAIN_FRACTION = 0.8

#: Per-measure version numbers: bump one to invalidate its caches by hand.
MEASURE_VERSIONS = {"lid": 1, "global": 1, "ridge": 1, "mutual_knn": 1, "cka": 1}
#: The utility modules whose source enters each measure's cache key (with :data:`_MEASURE_CODE`).
MEASURE_MODULES = {
    "lid": (L, knn_module),
    "global": (global_dim_module, L, knn_module),
    "ridge": (ridge_module, A),
    "mutual_knn": (A, knn_module),
    "cka": (A,),
}


def code_version(tag):
    """Cache-key component of a measure: its version number and the hash of the code that computes it.

    The code is the source of the utility modules of :data:`MEASURE_MODULES` and of this
    module's functions of :data:`MEASURE_FUNCTIONS` (their source text, not the file they sit
    in: moving this module or editing its other functions keeps the keys).
    """
    h = hashlib.sha256(str(MEASURE_VERSIONS[tag]).encode())
    for mod in MEASURE_MODULES[tag]:
        h.update(inspect.getsource(mod).encode())
    for fn in MEASURE_FUNCTIONS[tag]:
        h.update(inspect.getsource(fn).encode())
    return h.hexdigest()[:16]


def cached_frame(cache_dir, tag, key, compute):
    """Compute a DataFrame once per (content key, code version); stored atomically as ``.npz``.

    ``tag`` names the measure (a key of :data:`MEASURE_VERSIONS`, optionally with a
    suffix after ``-``); ``key`` hashes the inputs and arguments.
    """
    if cache_dir is None:
        return compute()
    base = tag.split("-")[0]
    path = Path(cache_dir) / "measures" / f"{tag}-{hash_key(key, code_version(base))}.npz"
    with computing(path):  # a chapter running beside this one waits instead of computing it again
        if path.exists():
            z = load_npz(path)
            return pd.DataFrame(z["values"], index=list(z["index"]), columns=list(z["columns"]))
        _progress.note(f"computing {tag} ({path.name[:-4]})")
        df = compute()
        save_npz(path, values=df.to_numpy(dtype=np.float64), index=np.array(df.index, dtype=str),
                 columns=np.array(df.columns, dtype=str))
    return df


def reps_key(reps, *extra):
    """Content key of a dict of representations (names and bytes) plus extra arguments."""
    return hash_key(*[(n, hash_key(np.ascontiguousarray(X))) for n, X in reps.items()], *extra)


# ----------------------------------------------------------------------------- space
def project(X, space="pca300", n_pcs=300, train_fraction=TRAIN_FRACTION, seed=0, device="auto"):
    """Representation in the analysis space.

    ``space="pca300"``: rows split by a seeded permutation, the first
    ``round(train_fraction * N)`` are the training split; with
    :math:`X_c = X_{train} - \\bar x_{train} = U S V^\\top`, every row is projected,
    :math:`Z = (X - \\bar x_{train}) V_{:, :q}`, :math:`q = \\min(n_{pcs}, D, n_{train} - 1)`.
    ``space="raw"``: ``X`` unchanged (float64).

    Returns
    -------
    ndarray (N, q) or (N, D), float64
    """

    X = np.asarray(X, dtype=np.float64)
    if space == "raw":
        return X
    if space != "pca300":
        raise ValueError(f"space must be one of {SPACES}, got {space!r}.")
    if not 0 < train_fraction <= 1:
        raise ValueError(f"train_fraction must be in (0, 1], got {train_fraction}.")
    n = X.shape[0]
    train = np.sort(np.random.default_rng(seed).permutation(n)[:max(2, int(round(train_fraction * n)))])
    return pca_fit_transform(X[train], X, n_pcs, device=device)[1]


def _dedup(X):
    dup = duplicate_rows(X)
    return (X[~dup] if dup.any() else X), int(dup.sum())


def lid_col(k, estimator="mle"):
    """Column name of mean LID at ``k`` by ``estimator`` in :func:`lid_table` (``"mle_k50"``)."""
    return f"{estimator}_k{int(k)}"


def lid_table(reps, ks, estimators=("mle",), space="pca300", n_pcs=300, seed=0, device="auto",
              cache_dir=None):
    """Mean local ID of each representation, per estimator and K, from one neighbour search each.

    Each representation is put in ``space`` (:func:`project`), exact duplicate rows
    are dropped (their count is ``n_duplicates``), one exact kNN search at
    ``max(ks)`` is run, and every estimator and ``K`` reuses it:

    - ``"mle"``: Levina–Bickel, :math:`\\hat m_k(x) = \\bigl[\\frac{1}{k-1}\\sum_{j<k}
      \\log\\frac{T_k(x)}{T_j(x)}\\bigr]^{-1}` (:func:`lidutils.lid.lid_mle`);
    - ``"mom"``: method of moments (:func:`lidutils.lid.lid_mom`);
    - ``"mada"``: manifold-adaptive (:func:`lidutils.lid.lid_mada`, when available);
    - ``twonn`` (always): Facco et al. from the first two neighbours.

    The model's value is the mean over points.

    Returns
    -------
    DataFrame (members x [``<est>_k<K>`` ..., ``twonn``, ``n_duplicates``])
    """

    ks = sorted({int(k) for k in ks})
    bad = [e for e in estimators if e not in ESTIMATORS]
    if bad:
        raise ValueError(f"unknown estimator(s) {bad}; choose from {ESTIMATORS}.")

    def compute():
        rows = {}
        for name, X in reps.items():
            Z, n_dup = _dedup(project(X, space, n_pcs, seed=seed, device=device))
            if max(ks) >= len(Z):
                raise ValueError(f"{name}: K = {max(ks)} needs more than {len(Z)} distinct points; "
                                 f"use ks below {len(Z)}.")
            nb = knn(Z, max(ks), device=device, duplicates="ignore")
            row = {}
            for est in estimators:
                if est == "mada":
                    for k in ks:
                        row[lid_col(k, est)] = float(np.mean(L.lid_mada(Z, k, neighbors=nb, duplicates="ignore")))
                    continue
                prof = L.lid_profile(Z, ks=ks, estimator=est, neighbors=nb, duplicates="ignore")
                row.update({lid_col(k, est): float(np.mean(v)) for k, v in prof.items()})
            row["twonn"] = L.lid_twonn(Z, neighbors=nb, duplicates="ignore")
            row["n_duplicates"] = n_dup
            rows[name] = row
        return pd.DataFrame.from_dict(rows, orient="index")

    key = reps_key(reps, ks, list(estimators), space, n_pcs, seed)
    return cached_frame(cache_dir, f"lid-{space}", key, compute)


def alpha_ranks(q):
    """Rank range of the spectral power-law fit for a spectrum of ``q`` components: (10, min(500, q/2))."""
    hi = max(11, min(500, q // 2))
    return (min(10, hi - 1), hi)


def global_table(reps, space="pca300", n_pcs=300, seed=0, device="auto", cache_dir=None):
    """Global dimension of each representation in ``space``: PR, effective rank, PCA-n90, alpha.

    :func:`lidutils.global_dim.global_dims` on the deduplicated, projected
    representation; the spectral exponent is fitted over :func:`alpha_ranks`.
    (TwoNN, a two-neighbour estimator, is local and lives in :func:`lid_table`.)
    """

    def compute():
        rows = {}
        for name, X in reps.items():
            Z, _ = _dedup(project(X, space, n_pcs, seed=seed, device=device))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # alpha is NaN where the spectrum is too short
                g = global_dims(Z, alpha_ranks=alpha_ranks(min(Z.shape)), device=device, duplicates="ignore")
            rows[name] = {k: float(v) for k, v in g.items() if k != "twonn"}
        return pd.DataFrame.from_dict(rows, orient="index")

    return cached_frame(cache_dir, f"global-{space}", reps_key(reps, space, n_pcs, seed), compute)


# ----------------------------------------------------------------------------- alignment
#: The claims' ridge protocol: one 80/20 outer split (the paper's "80 % training split"; the
#: 1st of 5 shuffled folds), alpha by 3-fold inner CV over a decade-spaced grid 1e-4 ... 1e5
#: relative to the source's mean squared singular value. (5 outer x 5 inner folds over a
#: half-decade grid cost 16x more; on 72 networks that was an hour on one CPU core.)
RIDGE = dict(n_folds=5, splits=1, inner_folds=3, rel_alphas=tuple(10.0 ** np.arange(-4.0, 5.5, 1.0)))


def ridge_all_pairs(reps, n_pcs=300, n_folds=5, seed=0, inner_folds=5, device="auto", cache_dir=None,
                 splits=None, rel_alphas=None):
    """Held-out ridge :math:`R^2` of every ordered pair (row = source, column = target).

    The paper's alignment, exactly as :func:`lidutils.alignment.ridge_alignment`
    (PCs of source and target fitted on each outer training fold, alpha by inner CV
    shared within a target model, variance-weighted held-out :math:`R^2` averaged
    over folds), but fast: per source and outer fold, **one** SVD and one inner-CV
    pass serve all targets at once (their PCs side by side); the alpha of each target
    model maximises the mean inner :math:`R^2` over that model's PC columns, as the
    pairwise fit does.

    Parameters
    ----------
    splits : int, optional
        Use only the first ``splits`` of the ``n_folds`` outer folds (``1`` with
        ``n_folds=5``: one 80/20 split); default all.
    rel_alphas : sequence, optional
        Alpha grid relative to the mean squared singular value of each source's
        centred training features (the default grid of
        :func:`lidutils.ridge.ridge_cv_predict` when None).

    Returns
    -------
    DataFrame (n, n); ``attrs["note"]`` states the convention.
    """

    names = list(reps)

    def compute():
        n = next(iter(reps.values())).shape[0]
        check_ridge_args(n, n_pcs, n_folds, "weighted")
        folds = outer_folds(n, n_folds, seed)[:splits]
        pcs = {m: fold_pcs(np.asarray(reps[m], dtype=np.float64), folds, n_pcs, device) for m in names}
        M = np.zeros((len(names), len(names)))
        for f in range(len(folds)):
            Ytr = np.concatenate([pcs[m][f][0] for m in names], axis=1)
            Yte = [pcs[m][f][1] for m in names]
            bounds = np.cumsum([0] + [y.shape[1] for y in Yte])
            for i, a in enumerate(names):
                Xtr, Xte = pcs[a][f]
                grid = None
                if rel_alphas is not None:
                    Xc = Xtr - Xtr.mean(0)
                    grid = np.asarray(rel_alphas) * max(float((Xc ** 2).sum()) / Xtr.shape[1], np.finfo(float).tiny)
                _, info = ridge_cv_predict(Xtr, Ytr, Xte, alphas=grid, inner_folds=inner_folds,
                                           alpha_per_target=True, seed=seed + f, device=device, return_info=True)
                cv, grid = info["cv_r2"], info["alphas"]
                alpha = np.empty(Ytr.shape[1])
                for j in range(len(names)):
                    block = cv[:, bounds[j]:bounds[j + 1]]
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)
                        mean = np.nanmean(block, axis=1)
                    best = int(np.nanargmax(mean)) if np.isfinite(mean).any() else len(grid) - 1
                    alpha[bounds[j]:bounds[j + 1]] = grid[best]
                P = ridge_predict(Xtr, Ytr, Xte, alpha, device=device)
                for j in range(len(names)):
                    M[i, j] += r2_weighted(Yte[j], P[:, bounds[j]:bounds[j + 1]]) / len(folds)
        return pd.DataFrame(M, index=names, columns=names)

    key = reps_key(reps, n_pcs, n_folds, seed, inner_folds, splits, None if rel_alphas is None else list(rel_alphas))
    df = cached_frame(cache_dir, "ridge", key, compute)
    df.attrs["metric"] = "ridge"
    df.attrs["note"] = "entry [a, b] = held-out R^2 of predicting b (column) from a (row)"
    return df


def cached_alignment(reps, metric="ridge", n_pcs=300, k=10, seed=0, device="auto", cache_dir=None):
    """Model–model alignment matrix by ``metric`` (``"ridge"``, ``"mutual_knn"``, ``"cka"``), cached."""

    if metric == "ridge":
        return ridge_all_pairs(reps, n_pcs=n_pcs, seed=seed, device=device, cache_dir=cache_dir, **RIDGE)
    if metric not in ("mutual_knn", "cka"):
        raise ValueError(f"metric must be 'ridge', 'mutual_knn' or 'cka', got {metric!r}.")
    kw = dict(k=k, device=device) if metric == "mutual_knn" else dict(device=device)
    df = cached_frame(cache_dir, metric, reps_key(reps, metric, sorted(kw.items())),
                      lambda: A.alignment_matrix(reps, metric=metric, **kw))
    df.attrs["metric"] = metric
    return df


def partner_scores(M, members, cell="design", family="family"):
    """Each model's mean alignment with its partners.

    Partners of model :math:`a` are the models of *other* design cells (a seed
    replicate of the same design is not a partner). For ridge (asymmetric), the
    pair score is the mean of both directions, :math:`(M_{ab} + M_{ba})/2`.

    Returns
    -------
    DataFrame indexed like ``M`` with ``mean_partner`` (all partners) and
    ``family_balanced`` (partners of other families only; NaN with one family).
    """
    names = list(M.index)
    S = M.to_numpy(dtype=float)
    S = (S + S.T) / 2
    mem = members.reindex(names)
    cells = mem[cell].to_numpy() if cell in mem else np.array(names, dtype=object)
    fams = mem[family].to_numpy() if family in mem else np.array(["all"] * len(names), dtype=object)
    other_cell = cells[:, None] != cells[None, :]
    other_fam = fams[:, None] != fams[None, :]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean_p = np.nanmean(np.where(other_cell, S, np.nan), axis=1)
        bal = np.nanmean(np.where(other_cell & other_fam, S, np.nan), axis=1)
    return pd.DataFrame({"mean_partner": mean_p, "family_balanced": bal}, index=names)


# ----------------------------------------------------------------------------- brain
def brain_long(probe_reps, brain, method="spearman", rdm_metric="correlation", device="auto"):
    """RSA of each model's probe RDM with each subject's RDM, per region: a long table.

    Parameters
    ----------
    probe_reps : dict[str, ndarray (N, D)]
    brain : dict[str, ndarray (n_subjects, N, N)]
        Region -> subjects' RDMs.

    Returns
    -------
    DataFrame with ``model``, ``roi``, ``subject`` (1-based), ``score``.
    """

    names = list(probe_reps)
    model_rdms = np.stack([rdm(probe_reps[n], rdm_metric, device=device) for n in names])
    frames = []
    for roi, rdms in brain.items():
        if model_rdms.shape[1] != rdms.shape[1]:
            raise ValueError(f"{model_rdms.shape[1]} probe images but the {roi} RDMs are "
                             f"{rdms.shape[1]}x{rdms.shape[2]}; embed that region's images.")
        S = rsa_many(model_rdms, rdms, method=method)
        frames.append(pd.DataFrame({"model": np.repeat(names, S.shape[1]), "roi": roi,
                                    "subject": np.tile(np.arange(1, S.shape[1] + 1), len(names)),
                                    "score": S.ravel()}))
    return pd.concat(frames, ignore_index=True)


# ----------------------------------------------------------------------------- units
def cell_means(table, cell="design", columns=None):
    """Average seed replicates per design cell: the analysis unit of every correlation.

    Numeric ``columns`` (default: all numeric) are averaged; their across-seed
    standard deviation is added as ``<col>_sd``; ``n_seeds`` counts the replicates;
    other columns keep the first replicate's value. A table without ``cell`` is
    returned unchanged (each row its own unit, ``n_seeds`` = 1).
    """
    if cell not in table:
        return table.assign(n_seeds=1)
    num = [c for c in (columns or table.columns) if c != cell and pd.api.types.is_numeric_dtype(table[c])
           and not pd.api.types.is_bool_dtype(table[c])]
    g = table.groupby(cell, sort=False)
    out = g[num].mean()
    first = g[[c for c in table.columns if c not in num and c != cell]].first()
    parts = [first, out]
    if (g.size() > 1).any():
        parts.append(g[num].std(ddof=1).add_suffix("_sd"))
    out = pd.concat(parts, axis=1)
    out["n_seeds"] = g.size()
    out["members"] = g.apply(lambda d: list(d.index), include_groups=False)
    return out


#: The functions of this module that compute each measure (their source enters its cache key).
MEASURE_FUNCTIONS = {
    "lid": (project, _dedup, lid_table, cached_frame, reps_key),
    "global": (project, global_table, cached_frame, reps_key),
    "ridge": (ridge_all_pairs, cached_frame, reps_key),
    "mutual_knn": (cached_alignment, cached_frame, reps_key),
    "cka": (cached_alignment, cached_frame, reps_key),
}
