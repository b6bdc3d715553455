"""Synthetic model populations whose answer is known, to validate the claim analysis.

A "not replicated" verdict only means something if the same analysis, at the same
number of models and stimuli, would have detected the paper's effect had it been
there. This module builds *worlds* in which the truth is set by parameters, so the
real analysis functions of the claim notebooks (:func:`lidutils.lid.lid_mle`,
:func:`lidutils.global_dim.global_dims`, :mod:`lidutils.alignment`,
:func:`lidutils.stats.corr`) can be run on them and checked against that truth.
Statistical power of the decision rule is in :mod:`lidutils.book.power`.

Generative model
----------------
Stimuli. ``n_stimuli`` latent points :math:`z_i \\in \\mathbb R^{d}` (``d_latent``),
standard Gaussian; the class label is
:math:`y_i = \\arg\\max_c w_c^\\top z_i` for ``n_classes`` random unit vectors
:math:`w_c` (a linear partition of the latent space).

Models. Model :math:`m` sees a *corrupted* latent
:math:`z^{(m)}_i = \\sqrt{1-c_m}\\, z_i + \\sqrt{c_m}\\, \\xi^{(m)}_i`
(:math:`\\xi \\sim N(0, I_d)`, ``corruption`` :math:`c_m \\in [0, 1)`), pushes it
through its own random two-layer network

.. math:: f_m(z) = \\tanh\\bigl(g\\, z W^{(m)}_1 + b^{(m)}_1\\bigr)\\, W^{(m)}_2
          \\in \\mathbb R^{D},

scaled to unit total variance, optionally reshapes its principal-component spectrum
(component :math:`j` scaled by :math:`j^{-\\beta_m/2}`, renormalised; ``spectrum``
:math:`\\beta_m`, a linear map, so the manifold dimension is unchanged), and adds
model-specific *nuisance* :math:`s_m\\, \\eta^{(m)}_i` with :math:`\\eta` Gaussian in
``nuisance_dims`` random directions of :math:`\\mathbb R^D` (total variance
:math:`s_m^2`). The smooth part lies on a ``d_latent``-dimensional manifold whatever
:math:`c_m` and :math:`\\beta_m`; the nuisance fills extra directions at the scale
of the nearest-neighbour distances, so :math:`s_m` sets the local dimension.

* Corruption :math:`c_m` lowers alignment (to the brain and to the other models)
  and generalization without changing the manifold dimension.
* Nuisance :math:`s_m` raises the local intrinsic dimension and, being independent
  noise, also lowers alignment and generalization.
* Spectrum :math:`\\beta_m` moves the global dimension (participation ratio) and
  leaves the local one (nearly) unchanged.

Generalization. Five-fold cross-validated accuracy of a shrinkage-LDA linear
decoder of :math:`y` from the representation (:func:`generalization_score`).

Brain. A further random network :math:`f_B` of the *true* latent into
``n_voxels`` dimensions (unit total variance); subject :math:`s` is
:math:`f_B(z_i) + \\sigma_B\\, \\epsilon^{(s)}_i` and its RDM is
:func:`lidutils.alignment.rdm` of that. All subjects share the signal, so the
between-subject RDM correlation (noise ceiling) is measurable and set by
``brain_noise``.

Worlds
------
``positive``
    Nuisance :math:`s_m` varies across models (uniform on ``nuisance_range``),
    corruption fixed: lower LID goes with better alignment and generalization by
    construction (claims C1–C3 true).
``negative``
    Nuisance varies over a small-amplitude range that moves LID but barely touches
    the quality measures, and quality is driven by an *independent* corruption
    :math:`c_m`: LID is unrelated to alignment and generalization (null).
``global_only``
    Only the spectrum exponent :math:`\\beta_m` varies: the participation ratio
    moves across models while the local LID stays (nearly) constant.
``local_only``
    Only the small-amplitude nuisance varies and, for each model, the spectrum
    exponent is solved for so that the participation ratio stays at a common
    target: local LID moves, global dimension does not.

Every world is deterministic per ``seed`` (``numpy.random.default_rng``).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from lidutils._validation import check_representation
from lidutils.alignment import rdm
from lidutils.book.study import from_population
from lidutils.book.measures import lid_col
from lidutils.book.population import Population
from lidutils.global_dim import participation_ratio

__all__ = [
    "WORLDS",
    "World",
    "make_world",
    "generalization_score",
    "claim_analysis",
    "first_stage_attenuation",
    "world_population",
    "TARGETS",
    "DIMENSIONS",
]

# Default world parameters. Every key can be overridden in make_world(**overrides).
_BASE = dict(
    n_models=16,
    n_stimuli=400,
    d_latent=6,
    n_classes=4,
    n_features=64,
    n_hidden=128,
    gain=0.5,
    nuisance_dims=None,  # None: isotropic in all n_features directions
    nuisance_space="random",  # "random" subspace, or "signal": the model's top signal PCs
    nuisance_range=(0.1, 0.9),  # uniform range of nuisance std s_m (signal total var = 1)
    corruption_range=(0.0, 0.0),  # uniform range of latent corruption c_m
    spectrum_range=(0.0, 0.0),  # uniform range of spectrum exponent beta_m
    target_pr=None,  # local_only: solve beta_m so that every model has this PR
    n_subjects=4,
    n_voxels=100,
    brain_noise=1.0,  # subject noise std relative to unit-variance brain signal
)

#: Named worlds: parameter overrides of the base world (see the module docstring).
WORLDS = {
    "positive": dict(nuisance_range=(0.1, 1.5), nuisance_dims=16, nuisance_space="signal",
                     corruption_range=(0.05, 0.05)),
    "negative": dict(nuisance_range=(0.02, 0.25), corruption_range=(0.0, 0.6)),
    "global_only": dict(nuisance_range=(0.1, 0.1), spectrum_range=(0.0, 2.0)),
    "local_only": dict(nuisance_range=(0.02, 0.4), target_pr="auto"),
}


@dataclass
class World:
    """A simulated model population over one stimulus set, with its ground truth.

    Attributes
    ----------
    name : str
        World name (key of :data:`WORLDS`) or ``"custom"``.
    representations : dict of str -> ndarray of shape (n_stimuli, n_features)
        Per-model representations, rows are stimuli in a common order.
    generalization : dict of str -> float
        Held-out label-decoding accuracy of each model (:func:`generalization_score`).
    brain_rdms : ndarray of shape (n_subjects, n_stimuli, n_stimuli)
        One RDM per simulated subject (:func:`lidutils.alignment.rdm`).
    labels : ndarray of shape (n_stimuli,)
        Latent class labels.
    latent : ndarray of shape (n_stimuli, d_latent)
        True latent stimuli.
    truth : dict of str -> ndarray of shape (n_models,)
        Per-model generating parameters: ``nuisance`` (:math:`s_m`),
        ``corruption`` (:math:`c_m`), ``spectrum`` (:math:`\\beta_m`).
    params : dict
        World-level parameters used (after overrides) and the ``seed``.
    """

    name: str
    representations: dict
    generalization: dict
    brain_rdms: np.ndarray
    labels: np.ndarray
    latent: np.ndarray
    truth: dict
    params: dict = field(default_factory=dict)

    @property
    def model_names(self):
        """Model names in population order."""
        return list(self.representations)

    @property
    def brain_rdm(self):
        """Mean RDM over subjects (the alignment target of the claim analysis)."""
        return self.brain_rdms.mean(0)

    def generalization_array(self):
        """Generalization scores as an array in :attr:`model_names` order."""
        return np.array([self.generalization[m] for m in self.model_names])


# ----------------------------------------------------------------------------- helpers
def _random_net(rng, d_in, n_hidden, d_out, gain):
    """Weights of a random 2-layer tanh network (fan-in scaled)."""
    W1 = rng.standard_normal((d_in, n_hidden)) * (gain / np.sqrt(d_in))
    b1 = rng.standard_normal(n_hidden) * 0.5
    W2 = rng.standard_normal((n_hidden, d_out)) / np.sqrt(n_hidden)
    return W1, b1, W2


def _apply_net(net, z):
    W1, b1, W2 = net
    return np.tanh(z @ W1 + b1) @ W2


def _unit_variance(X):
    """Centre ``X`` and scale it to total variance 1 (sum of column variances)."""
    X = X - X.mean(0)
    return X / np.sqrt((X**2).sum(1).mean())


def _pca(X):
    """Principal axes and variances of centred ``X`` (descending)."""
    Xc = X - X.mean(0)
    _, S, Vt = np.linalg.svd(Xc, full_matrices=False)
    return Vt, S**2 / len(X)


def _reshape_spectrum(F, beta):
    """Scale principal component ``j`` (1-based) of ``F`` by ``j**(-beta/2)``; unit variance."""
    if beta == 0:
        return F
    Fc = F - F.mean(0)
    Vt, _ = _pca(Fc)
    scale = np.arange(1, len(Vt) + 1, dtype=np.float64) ** (-beta / 2)
    return _unit_variance(((Fc @ Vt.T) * scale) @ Vt)


def _noise_pr(F, noise, beta):
    """Participation ratio (:func:`lidutils.global_dim.participation_ratio`) of reshape(F, beta) + noise."""

    return float(participation_ratio(_reshape_spectrum(F, beta) + noise, device="cpu"))


def _solve_beta(F, noise, target, lo=-1.0, hi=4.0):
    """Spectrum exponent giving participation ratio ``target`` (PR decreases in beta)."""
    from scipy.optimize import brentq

    f = lambda b: _noise_pr(F, noise, b) - target  # noqa: E731
    flo, fhi = f(lo), f(hi)
    if flo < 0 or fhi > 0:
        raise ValueError(
            f"target_pr={target:.2f} is outside the reachable range [{fhi + target:.2f}, "
            f"{flo + target:.2f}] of this model; choose a target_pr inside it or 'auto'."
        )
    return brentq(f, lo, hi, xtol=1e-4)


def _uniform(rng, rng_range, n):
    lo, hi = map(float, rng_range)
    if hi < lo:
        raise ValueError(f"range {rng_range} must be (low, high) with low <= high.")
    return rng.uniform(lo, hi, n) if hi > lo else np.full(n, lo)


# ----------------------------------------------------------------------------- public API
def generalization_score(X, labels, n_folds=5, seed=0):
    """Cross-validated accuracy of a linear decoder of ``labels`` from ``X``.

    The stimuli are split into ``n_folds`` stratified folds; each fold is predicted
    by a decoder trained on the others, so every stimulus is a held-out test item
    once (less sampling noise than one train/test split). The decoder is linear
    discriminant analysis with Ledoit–Wolf shrinkage of the within-class covariance
    (``LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")``: closed form,
    so fast, and well conditioned when the number of features approaches the
    number of training stimuli). The score is the held-out accuracy

    .. math:: \\mathrm{acc} = \\frac{1}{N} \\sum_{i=1}^{N} [\\hat y_{-f(i)}(x_i) = y_i],

    :math:`\\hat y_{-f(i)}` being the decoder trained without stimulus :math:`i`'s fold.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)
    n_folds : int, default=5
        Needs at least ``n_folds`` stimuli of every class.
    seed : int
        Seed of the fold assignment (the same seed gives the same folds for every model).

    Returns
    -------
    float
        Held-out accuracy in [0, 1].
    """
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.model_selection import StratifiedKFold, cross_val_predict


    X = check_representation(X, "X", min_samples=4, duplicates="ignore")
    labels = np.asarray(labels)
    if labels.shape != (X.shape[0],):
        raise ValueError(
            f"labels must have shape ({X.shape[0]},) to match X, got {labels.shape}."
        )
    _, counts = np.unique(labels, return_counts=True)
    if len(counts) < 2:
        raise ValueError("labels hold a single class: there is nothing to decode.")
    if counts.min() < n_folds:
        raise ValueError(
            f"the rarest class has {counts.min()} stimuli, fewer than n_folds={n_folds}; "
            "use fewer folds or more stimuli."
        )
    folds = StratifiedKFold(n_folds, shuffle=True, random_state=seed)
    clf = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")
    pred = cross_val_predict(clf, X, labels, cv=folds)
    return float((pred == labels).mean())


def make_world(name="positive", seed=0, **overrides):
    """Simulate a population of models, a brain and generalization scores.

    Parameters
    ----------
    name : {"positive", "negative", "global_only", "local_only"} or "custom"
        Named world (see the module docstring and :data:`WORLDS`); ``"custom"``
        starts from the base parameters only.
    seed : int
        Seed; the same ``(name, seed, overrides)`` always gives the same world.
    **overrides
        Any base parameter: ``n_models`` (16), ``n_stimuli`` (400), ``d_latent`` (6),
        ``n_classes`` (4), ``n_features`` (64), ``n_hidden`` (128), ``gain`` (1.0),
        ``nuisance_dims`` (None = all ``n_features``), ``nuisance_range``,
        ``corruption_range``, ``spectrum_range`` (uniform ranges of the per-model
        :math:`s_m`, :math:`c_m`, :math:`\\beta_m`), ``target_pr`` (None, a number,
        or ``"auto"`` = median PR of the population), ``n_subjects`` (4),
        ``n_voxels`` (100), ``brain_noise`` (1.0).

    Returns
    -------
    World
    """

    if name != "custom" and name not in WORLDS:
        raise ValueError(f"unknown world {name!r}; choose one of {sorted(WORLDS)} or 'custom'.")
    unknown = set(overrides) - set(_BASE)
    if unknown:
        raise ValueError(f"unknown world parameter(s) {sorted(unknown)}; valid: {sorted(_BASE)}.")
    p = dict(_BASE)
    p.update(WORLDS.get(name, {}))
    p.update(overrides)
    M, N, d, D = int(p["n_models"]), int(p["n_stimuli"]), int(p["d_latent"]), int(p["n_features"])
    if M < 2:
        raise ValueError(f"n_models must be >= 2, got {M}.")
    if N < 4 * p["n_classes"]:
        raise ValueError(f"n_stimuli={N} is too small for {p['n_classes']} classes; use >= {4 * p['n_classes']}.")
    if not 0 <= min(p["corruption_range"]) <= max(p["corruption_range"]) < 1:
        raise ValueError(f"corruption_range must lie in [0, 1), got {p['corruption_range']}.")
    n_nuis = D if p["nuisance_dims"] is None else int(p["nuisance_dims"])
    if not 1 <= n_nuis <= D:
        raise ValueError(f"nuisance_dims must be in [1, n_features={D}], got {n_nuis}.")

    # Independent random streams, so that the same world at another n_stimuli keeps
    # every model, its parameters and the brain: only the stimuli change.
    rng_par = np.random.default_rng([seed, 0])
    w = rng_par.standard_normal((p["n_classes"], d))
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    s = _uniform(rng_par, p["nuisance_range"], M)
    c = _uniform(rng_par, p["corruption_range"], M)
    beta = _uniform(rng_par, p["spectrum_range"], M)
    brain_net = _random_net(rng_par, d, p["n_hidden"], p["n_voxels"], p["gain"])
    # stimuli and labels
    z = np.random.default_rng([seed, 2]).standard_normal((N, d))
    labels = np.argmax(z @ w.T, axis=1)
    # brain: shared signal of the true latent + subject noise
    brain_signal = _unit_variance(_apply_net(brain_net, z))
    sigma_b = p["brain_noise"] / np.sqrt(p["n_voxels"])
    rng_b = np.random.default_rng([seed, 3])
    brain = [brain_signal + sigma_b * rng_b.standard_normal(brain_signal.shape)
             for _ in range(int(p["n_subjects"]))]
    brain_rdms = np.stack([rdm(B, device="cpu") for B in brain])

    # models: smooth part, then nuisance
    smooth, noises = [], []
    for m in range(M):
        net = _random_net(np.random.default_rng([seed, 1, m]), d, p["n_hidden"], D, p["gain"])
        model_rng = np.random.default_rng([seed, 4, m])
        zm = np.sqrt(1 - c[m]) * z + np.sqrt(c[m]) * model_rng.standard_normal(z.shape)
        smooth.append(_unit_variance(_apply_net(net, zm)))
        if p["nuisance_space"] == "signal":
            basis = _pca(smooth[-1])[0][:n_nuis].T  # (D, n_nuis): top signal PCs
        elif p["nuisance_space"] == "random":
            basis = np.linalg.qr(np.random.default_rng([seed, 5, m]).standard_normal((D, n_nuis)))[0]
        else:
            raise ValueError(f"nuisance_space must be 'random' or 'signal', got {p['nuisance_space']!r}.")
        noises.append(s[m] / np.sqrt(n_nuis) * model_rng.standard_normal((N, n_nuis)) @ basis.T)

    target = p["target_pr"]
    if target is not None:
        if target == "auto":
            target = float(np.median([_noise_pr(F, E, 0.0) for F, E in zip(smooth, noises)]))
        beta = np.array([_solve_beta(F, E, float(target)) for F, E in zip(smooth, noises)])
    width = len(str(M - 1))
    reps = {}
    for m in range(M):
        reps[f"model_{m:0{width}d}"] = _reshape_spectrum(smooth[m], beta[m]) + noises[m]
    gen = {k: generalization_score(X, labels, seed=seed) for k, X in reps.items()}
    params = dict(p, seed=seed, target_pr=target)
    return World(
        name=name, representations=reps, generalization=gen, brain_rdms=brain_rdms,
        labels=labels, latent=z, truth=dict(nuisance=s, corruption=c, spectrum=beta),
        params=params,
    )


#: Targets of the claim analysis: column of the per-model table -> claim.
TARGETS = {"brain_rsa": "C2", "model_alignment": "C1", "generalization": "C3"}


DIMENSIONS = ("lid", "lid_global", "participation_ratio")


def world_population(world):
    """A :class:`World` as a :class:`lidutils.book.population.Population` (group ``"world"``).

    Each model is its own unit; its generalization is the ``accuracy``; its ground
    truth (``nuisance``, ``corruption``, ``spectrum``) is in ``members``; the
    representations serve as both evaluation and probe embeddings; the subjects'
    RDMs are the brain data (region ``"all"``). This is how the validation
    chapter sends a world through the claim notebooks' own functions
    (:mod:`lidutils.book.claims`).
    """
    import pandas as pd


    names = world.model_names
    members = pd.DataFrame(index=pd.Index(names, name="member"))
    members["group"] = "world"
    members["family"] = "simulated"
    members["pretrained"] = True
    members["n_params"] = float("nan")
    members["accuracy"] = world.generalization_array()
    members["accuracy_kind"] = "cross-validated decoding accuracy (simulated)"
    members["design"] = names
    for t, v in world.truth.items():
        members[t] = np.asarray(v, dtype=float)
    return Population(members, dict(world.representations), dict(world.representations),
                      {"world": f"{world.params['n_stimuli']} simulated stimuli"},
                      brain={"all": world.brain_rdms})


def claim_analysis(world, k=10, k_global=None, method="spearman", n_boot=2000, n_perm=10000, seed=0,
                   metric="ridge", dims=DIMENSIONS, targets=tuple(TARGETS), device="auto", space="pca300"):
    """Run the claim notebooks' analysis on a :class:`World`, through the notebooks' own functions.

    The world becomes a population (:func:`world_population`) and is measured and
    correlated by :mod:`lidutils.book.claims` exactly as a real population is:

    - ``lid``: mean Levina–Bickel LID at ``k`` in the analysis ``space``
      (:func:`lidutils.book.measures.lid_table`);
    - ``lid_global``: the same at ``k_global`` (default ``n_stimuli // 4``);
    - ``participation_ratio`` and the other global measures
      (:func:`lidutils.book.measures.global_table`);
    - ``brain_rsa``: RSA with each subject's RDM, averaged over subjects
      (:func:`lidutils.book.measures.brain_long`);
    - ``model_alignment``: mean alignment with the other models (``metric``, the
      notebooks' ridge R² by default; :func:`lidutils.book.measures.partner_scores`);
    - ``generalization``: the world's held-out decoding accuracy;
    - ground truth ``nuisance``, ``corruption``, ``spectrum``.

    Each dimension measure is correlated with each target by
    :func:`lidutils.book.claims.correlate` (the record of the results files, with its
    :func:`lidutils.stats.verdict`).

    Returns
    -------
    dict
        ``table`` (DataFrame indexed by model), ``corr[dimension][target]`` = record,
        ``k``, ``k_global``.
    """

    if not isinstance(world, World):
        raise ValueError(f"world must be a lidutils.book.simulate.World (make_world), got {type(world)}.")
    bad = [d for d in dims if d not in DIMENSIONS] + [t for t in targets if t not in TARGETS]
    if bad:
        raise ValueError(f"unknown dims/targets {bad}; dims from {DIMENSIONS}, targets from {tuple(TARGETS)}.")
    N = world.brain_rdms.shape[1]
    k_global = max(k + 1, N // 4) if k_global is None else int(k_global)
    study = from_population(world_population(world), method=method, n_boot=n_boot, n_perm=n_perm,
                            seed=seed, device=device, space=space)
    name = next(iter(study.populations))
    t = study.table(name, ks=(k, k_global), global_dims="participation_ratio" in dims,
                    align=(metric,) if "model_alignment" in targets else (),
                    brain="brain_rsa" in targets)
    table = t.rename(columns={lid_col(k): "lid", lid_col(k_global): "lid_global", metric: "model_alignment",
                              "brain_all": "brain_rsa", "accuracy": "generalization"})
    results = {}
    for dim in dims:
        results[dim] = {}
        for target in targets:
            if np.ptp(table[dim]) == 0 or np.ptp(table[target]) == 0:
                continue  # a constant column has no correlation (e.g. PR held fixed)
            results[dim][target] = study.correlate(TARGETS[target], table, dim, target, population=name,
                                                   k=k if dim == "lid" else None)
    return dict(table=table, corr=results, k=k, k_global=k_global)


@functools.lru_cache(maxsize=16)
def first_stage_attenuation(n_stimuli=400, n_ref=1600, n_models=24, n_worlds=3,
                            world="positive", k=10, targets=("generalization", "brain_rsa"),
                            seed=0):
    """Attenuation of the LID–target correlation by finite-stimulus estimation.

    The same positive worlds (same models, nuisance levels and brain; only the
    stimuli differ) are analysed with :func:`claim_analysis` at
    ``n_stimuli`` and at ``n_ref`` stimuli. With :math:`\\bar r_N` the mean over
    worlds and targets of the Spearman correlation of LID with the target,

    .. math:: a = \\bar r_{N} / \\bar r_{N_{ref}} ,

    the attenuation factor. ``reliability`` is the mean Spearman correlation of the
    per-model LID at ``n_stimuli`` with that at ``n_ref``.

    Returns
    -------
    dict
        ``factor``, ``r_n`` and ``r_ref`` (per target, mean over worlds),
        ``reliability``, and the settings.
    """
    from scipy.stats import spearmanr

    r_n = {t: [] for t in targets}
    r_ref = {t: [] for t in targets}
    rel = []
    for w in range(n_worlds):
        tabs = []
        for N, store in ((n_stimuli, r_n), (n_ref, r_ref)):
            res = claim_analysis(make_world(world, seed=seed + w, n_models=n_models, n_stimuli=N),
                                 k=k, dims=("lid",), targets=tuple(targets), n_boot=0, n_perm=0)
            for t in targets:
                store[t].append(res["corr"]["lid"][t]["r"])
            tabs.append(res["table"]["lid"].to_numpy())
        rel.append(spearmanr(*tabs)[0])
    mean_n = float(np.mean([np.mean(v) for v in r_n.values()]))
    mean_ref = float(np.mean([np.mean(v) for v in r_ref.values()]))
    return dict(factor=mean_n / mean_ref, r_n={t: float(np.mean(v)) for t, v in r_n.items()},
                r_ref={t: float(np.mean(v)) for t, v in r_ref.items()},
                reliability=float(np.mean(rel)), n_stimuli=n_stimuli, n_ref=n_ref,
                n_models=n_models, n_worlds=n_worlds, world=world, k=k)
