"""The paper's numbers, in one place (arXiv 2601.22722, read page by page).

Every claim notebook, the results records (``paper_value``, ``paper_r``,
``paper_setting``) and the power figures take the paper's values from :data:`PAPER`
and never type them in. The paper's measurement protocol is :data:`PROTOCOL`.

Claims
------
====  =====================================================  ==========================
C1    Pearson r = −0.838 (LID vs model–model ridge R²)        ConvNeXt, K = 50
C2    Pearson r = −0.843 (LID vs model–brain, EBA, NSD)       ConvNeXt, K = 1000
C3    Pearson r = −0.916 (LID vs ImageNet-1k top-1)           ConvNeXt, K = 50
C4    r decays as K grows; global estimates do not predict   Fig. 4 (no single number)
C5    log-params vs LID r = −0.756; accuracy vs log-params    ConvNeXt
      r = +0.949
C6    holds across ConvNeXt, ResNet, ResMLP, MAE-ViT          Fig. 5 (no single number)
C7    every one of 8 subjects r < −0.596                      App. E, F; NSD, K = 1000
====  =====================================================  ==========================

C7's value is an upper bound on every subject's r; :func:`paper_r` returns the
bound (−0.596) as the claim's numeric value.
"""
from __future__ import annotations

import math

__all__ = ["PAPER", "PROTOCOL", "POWER_ALTERNATIVES", "paper_r", "paper_value", "paper_k",
           "expected_sign", "power_alternatives", "claim_info"]

#: The paper's measurement protocol (Sec. 3 and App. B of the paper).
PROTOCOL = dict(
    n_pcs=300,                 # LID, global dimension and ridge on the top 300 PCs ...
    pca_train_fraction=0.8,    # ... fitted on an 80 % training split of the stimuli
    k_model=50,                # K for model-model alignment and generalization
    k_brain=1000,              # K for brain alignment
    method="pearson",          # the paper reports Pearson correlations
    alignment="ridge R² on 300 PCs, both directions averaged",
    estimators_robustness=("mom", "mada"),  # App. G
)

#: Effect sizes (besides each claim's own value) at which power is always reported.
POWER_ALTERNATIVES = (-0.3, -0.5)

#: claim -> the paper's statement, display value, numeric value(s), setting, sign and K.
#: ``paper_r`` is None where the paper gives no single number (C4, C6); C5 has two
#: numbers, keyed in ``values`` (``"lid_vs_log_params"``, the primary, and
#: ``"accuracy_vs_log_params"``).
PAPER = {
    "C1": dict(
        statement="Lower local ID goes with stronger model–model alignment.",
        paper_value="Pearson r = −0.838, p < 0.001",
        paper_r=-0.838,
        paper_setting="ConvNeXt, K = 50, ridge R² (300 PCs) both directions averaged; "
                      "also a reference-model variant "
                      "(convnext_large_mlp.clip_laion2b_soup_ft_in12k_in1k_384)",
        expected_sign=-1, k=PROTOCOL["k_model"], notebook="02_model_model"),
    "C2": dict(
        statement="Lower local ID goes with stronger model–brain alignment.",
        paper_value="Pearson r = −0.843, p < 0.001",
        paper_r=-0.843,
        paper_setting="ConvNeXt, EBA, voxelwise ridge encoding on NSD, K = 1000",
        expected_sign=-1, k=PROTOCOL["k_brain"], notebook="03_model_brain"),
    "C3": dict(
        statement="Lower local ID goes with better generalization (ImageNet top-1).",
        paper_value="Pearson r = −0.916, p < 0.001",
        paper_r=-0.916,
        paper_setting="ConvNeXt, ImageNet-1k top-1, K = 50",
        expected_sign=-1, k=PROTOCOL["k_model"], notebook="01_generalization"),
    "C4": dict(
        statement="Local ID (small K) predicts alignment and generalization; the correlation "
                  "decays as K grows and global dimension estimates do not predict.",
        paper_value="correlation decays as K grows; global estimates do not predict (Fig. 4)",
        paper_r=None,
        paper_setting="ConvNeXt, K sweep; participation ratio and other global estimates",
        expected_sign=-1, k=PROTOCOL["k_model"], notebook="05_local_vs_global"),
    "C5": dict(
        statement="More capacity and more training data lower local ID.",
        paper_value="log-params vs LID r = −0.756; accuracy vs log-params r = +0.949",
        paper_r=-0.756,
        values={"lid_vs_log_params": -0.756, "accuracy_vs_log_params": 0.949},
        paper_setting="ConvNeXt sizes; also 1K → 22K pretraining data lowers LID",
        expected_sign=-1, k=PROTOCOL["k_model"], notebook="04_scaling"),
    "C6": dict(
        statement="The LID–alignment relation holds within and across architecture families.",
        paper_value="holds across ConvNeXt, ResNet (20), ResMLP (8), MAE-ViT (3); AI–AI "
                    "attenuated by family clustering (Fig. 5)",
        paper_r=None,
        paper_setting="ConvNeXt, ResNet (20), ResMLP (8), MAE-ViT (3)",
        expected_sign=-1, k=PROTOCOL["k_model"], notebook="02_model_model"),
    "C7": dict(
        statement="The LID–brain relation holds across subjects and visual areas, "
                  "strongest in higher (ventral) areas.",
        paper_value="every one of 8 subjects r < −0.596; V1 → EBA/FBA, stronger in higher areas",
        paper_r=-0.596,
        paper_setting="NSD, 8 subjects, per subject and region (App. E, F), K = 1000",
        expected_sign=-1, k=PROTOCOL["k_brain"], notebook="03_model_brain"),
}


def _claim(claim):
    key = str(claim).upper()
    if key not in PAPER:
        raise ValueError(f"Unknown claim {claim!r}; the paper's claims are {sorted(PAPER)}.")
    return PAPER[key]


def paper_r(claim, value=None):
    """The paper's numeric correlation for ``claim`` (None where the paper gives none).

    Parameters
    ----------
    claim : str
        ``"C1"`` ... ``"C7"``.
    value : str, optional
        For claims with several numbers (C5): a key of ``PAPER[claim]["values"]``,
        e.g. ``"accuracy_vs_log_params"``. Default: the claim's primary value.

    Returns
    -------
    float or None
    """
    c = _claim(claim)
    if value is None:
        return c["paper_r"]
    values = c.get("values", {})
    if value not in values:
        raise ValueError(f"{claim} has no paper value {value!r}; it has {sorted(values)}.")
    return values[value]


def paper_value(claim):
    """Display text of the paper's value, e.g. ``"Pearson r = −0.916, p < 0.001"``."""
    return _claim(claim)["paper_value"]


def paper_k(claim):
    """The paper's neighbourhood size K for ``claim`` (50 model–model / generalization, 1000 brain)."""
    return _claim(claim)["k"]


def expected_sign(claim, value=None):
    """Sign the paper reports: the sign of the numeric value, else the claim's direction."""
    r = paper_r(claim, value)
    return _claim(claim)["expected_sign"] if r is None else int(math.copysign(1, r))


def power_alternatives(claim, value=None):
    """True correlations at which power is reported for ``claim``.

    The claim's own value (when the paper gives one) followed by :data:`POWER_ALTERNATIVES`
    with the claim's expected sign, e.g. ``(-0.916, -0.3, -0.5)`` for C3,
    ``(0.949, 0.3, 0.5)`` for C5's accuracy-vs-log-params, ``(-0.3, -0.5)`` for C4.
    """
    r = paper_r(claim, value)
    s = expected_sign(claim, value)
    alts = tuple(s * abs(a) for a in POWER_ALTERNATIVES)
    return alts if r is None else (r,) + tuple(a for a in alts if a != r)


def claim_info(claim):
    """Fields of a results file taken from the paper: ``claim, statement, paper_value,
    paper_r, paper_setting, expected_sign, k, notebook`` (a new dict)."""
    c = _claim(claim)
    return dict(claim=str(claim).upper(), statement=c["statement"], paper_value=c["paper_value"],
                paper_r=c["paper_r"], paper_setting=c["paper_setting"],
                expected_sign=c["expected_sign"], k=c["k"], notebook=c["notebook"])
