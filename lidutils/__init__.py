"""lidutils: fast local intrinsic dimension, representational alignment and statistics.

Companion package of the executable reproduction of *Local Intrinsic Dimension of
Representations Predicts Alignment and Generalization in AI Models and Human Brain*
(arXiv 2601.22722). Arrays in, numpy arrays out; torch inside (``device="auto"``
uses CUDA when present).

Two layers. The utility is this package's flat modules (``neighbors``, ``lid``,
``global_dim``, ``alignment``, ``ridge``, ``encoding``, ``rsatools``, ``stats``,
``resampling``, ``verdicts``, ``dependent``, ``penalty``, ``cache``; data and model loading
beside them: ``datasets``, ``loaders``, ``nsd``, ``standins``, ``models``, ``archs``,
``features``, ``degrade``, ``sweep``); it knows nothing of the book. The book's experiment
is :mod:`lidutils.book`, which imports the utility and never the reverse.

This file is only imports and organisation: public names are imported lazily, so
``import lidutils`` stays fast and the heavier modules load only when used. The names
of the book layer listed below (``train_zoo``, ``power_at``, ...) stay here for
compatibility; the flat module paths of the book (``lidutils.claims``, ...) are aliases
of the ``lidutils.book`` modules for one release.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = {
    # neighbours and dimension
    "knn": "neighbors",
    "lid_mle": "lid", "lid_mom": "lid", "lid_mada": "lid", "lid_profile": "lid", "lid_twonn": "lid",
    "global_dims": "global_dim", "participation_ratio": "global_dim",
    "effective_rank": "global_dim",
    # alignment
    "mutual_knn": "alignment", "linear_cka": "alignment", "ridge_alignment": "alignment",
    "alignment_matrix": "alignment", "mutual_knn_neighbors": "alignment",
    # RSA
    "rdm": "rsatools", "rsa": "rsatools", "rsa_many": "rsatools", "noise_ceiling": "rsatools",
    "ranking_reliability": "rsatools", "partial_rsa": "rsatools", "pixel_rdm": "rsatools",
    "gabor_rdm": "rsatools", "brain_test_informative": "rsatools",
    "ridge_cv_predict": "ridge", "ridge_predict": "ridge", "r2_columns": "ridge",
    "pca_fit_transform": "ridge",
    "encoding_alignment": "encoding", "split_half_noise_ceiling": "encoding",
    # statistics
    "corr": "stats", "partial_corr": "stats", "verdict": "stats", "corr_table": "stats",
    "corr_batch": "stats", "verdict_batch": "stats", "excludes": "stats", "holm": "stats",
    "compare_dependent": "dependent", "c4_rule": "book.local_global", "corr_within": "stats", "label": "stats",
    "fisher_ci": "stats", "rmcorr": "stats",
    "power_at": "book.power", "claim_power": "book.power", "paper_r": "book.paper",
    # data, models, features
    "load_algonauts92": "datasets", "load_rdm_dataset": "datasets",
    "load_imagenet_sample": "datasets",
    "load_algonauts2023": "nsd", "load_nsd_betas": "nsd",
    "load_model": "models", "model_table": "models", "extract": "features",
    "degradation_series": "degrade", "weight_noise": "degrade", "magnitude_prune": "degrade",
    "blur": "degrade", "downsample": "degrade",
    # model zoo, synthetic worlds, sweeps
    "train_zoo": "book.zoo", "zoo_summary": "book.zoo", "load_embeddings": "book.zoo",
    "load_animal_mnist": "loaders", "load_fashion_mnist": "loaders",
    "design_table": "book.zoo", "load_learning_curve": "book.zoo",
    # intervention (C8): a differentiable LID penalty
    "batch_penalty": "penalty", "matched_weight": "penalty",
    "make_world": "book.simulate", "claim_analysis": "book.simulate", "power_table": "book.power",
    "run_sweep": "sweep", "sweep_table": "sweep", "model_task": "sweep",
    # paper tier (and its dry run on stand-ins)
    "build_paper_population": "book.paper_tier", "read_bundle": "book.paper_tier", "write_bundle": "book.paper_tier",
    "paper_model": "book.paper_tier", "vertexwise_corr": "surface", "make_nsd_layout": "standins",
    "ncsnr_to_noise_ceiling": "nsd",
    # the book: figure style, family colours, claims page
    "book_style": "book.plotting", "family_color": "book.plotting", "family_palette": "book.plotting",
    "read_claims": "book.report", "forest_plot": "book.claims_page",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name):
    if name in _API:
        value = getattr(importlib.import_module(f".{_API[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lidutils' has no attribute {name!r}")


def __dir__():
    return __all__
