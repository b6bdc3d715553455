"""A user's own brain data as it comes, through notebook 03 (papermill).

Generated sets in the forms a lab has: photos of slightly different sizes and aspect
ratios, JPEG / grey / RGBA / palette PNG files, RDMs as condensed upper-triangle vectors,
square stacks with a NaN diagonal, float32 and one region or several. Each run ends
with results records, or stops with a message naming the file, key and entry.

Three papermill runs on the smoke zoo without ImageNet models (``models: []``,
``controls: []``), 24 images, few bootstrap draws; the zoo is trained once for the
module (about a minute on 2 CPU cores), then each run takes well under a minute. The
loader's cases one by one are fast tests in ``tests/test_datasets.py``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

pm = pytest.importorskip("papermill")

ROOT = Path(__file__).resolve().parents[2]
NB03 = ROOT / "notebooks" / "03_model_brain.ipynb"
DATA = os.environ.get("LIDUTILS_DATA_DIR") or (
    str(ROOT.parent / "shared" / "data") if (ROOT.parent / "shared" / "data").is_dir() else None)
N_IMAGES, N_SUBJECTS = 24, 3
#: (height, width): most 400x400, some cropped by hand to 399 or 402 px, one wide photo.
SIZES = [(400, 400), (400, 399), (402, 400), (300, 420)]
PARAMS = dict(tier="offline", zoo_grid="smoke", models=[], controls=[], n_boot=100, n_perm=100, seed=0,
              device="cpu", data_dir=DATA)


def make_image_set(folder, n=N_IMAGES, seed=0):
    """n images of mixed size and kind (JPEG, grey, RGBA, palette, RGB PNG); returns their latent features."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(n, 6))
    for i in range(n):
        h, w = SIZES[i % len(SIZES)]
        wave = np.outer(np.sin(np.linspace(0, 3 + 3 * feats[i, 0], h)), np.cos(np.linspace(0, 3 + 3 * feats[i, 1], w)))
        x = np.stack([wave, np.roll(wave, int(5 * feats[i, 2]), 0), -wave], -1)
        x = ((x + 1) * 127).clip(0, 255).astype(np.uint8)
        kind = i % 5
        if kind == 0:
            Image.fromarray(x).save(folder / f"im{i:02d}.jpg", quality=90)
        elif kind == 1:
            Image.fromarray(x[..., 0]).save(folder / f"im{i:02d}.png")  # grey
        elif kind == 2:
            a = np.dstack([x, np.full((h, w), 255, np.uint8)])
            a[: h // 4, :, 3] = 0  # a transparent band
            Image.fromarray(a, mode="RGBA").save(folder / f"im{i:02d}.png")
        elif kind == 3:
            Image.fromarray(x).convert("P").save(folder / f"im{i:02d}.png")  # palette
        else:
            Image.fromarray(x).save(folder / f"im{i:02d}.png")
    return feats


def subject_rdms(feats, n_subjects=N_SUBJECTS, seed=1):
    """(n_subjects, N(N-1)/2) condensed Euclidean RDMs of noisy copies of the features."""
    from scipy.spatial.distance import pdist

    rng = np.random.default_rng(seed)
    return np.stack([pdist(feats + 0.5 * rng.normal(size=feats.shape)) for _ in range(n_subjects)])


def square(cond, diagonal=0.0):
    from scipy.spatial.distance import squareform

    out = np.stack([squareform(c) for c in cond])
    out[:, range(out.shape[1]), range(out.shape[1])] = diagonal
    return out


@pytest.fixture(scope="module")
def zoo_cache(tmp_path_factory):
    """A cache with the smoke zoo trained (once for the module), embedding a generated image set."""
    from lidutils.book.population import build_population

    cache = tmp_path_factory.mktemp("own-data-cache")
    d = tmp_path_factory.mktemp("own-data-zoo")
    feats = make_image_set(d / "images")
    np.savez(d / "rdms.npz", rdms=subject_rdms(feats))
    build_population(zoo_grid="smoke", include=("zoo",), cache_dir=cache, device="cpu",
                     rdm_npz=d / "rdms.npz", image_dir=d / "images")
    return cache


def run_03(tmp_path, cache, rdm_npz, image_dir):
    """Notebook 03 on a user's set -> its results folder (raises papermill's error if it stops)."""
    import time

    out = tmp_path / "out"
    params = dict(PARAMS, cache_dir=str(cache), out_dir=str(out), rdm_npz=str(rdm_npz), image_dir=str(image_dir))
    declared = pm.inspect_notebook(str(NB03))
    assert {"rdm_npz", "image_dir", "models", "controls"} <= set(declared)
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(str(NB03), str(tmp_path / "03.ipynb"), parameters=params, cwd=str(ROOT),
                            kernel_name="python3", progress_bar=False)
    finally:
        print(f"notebook 03 ran {time.perf_counter() - t0:.0f} s")
    return out


def _records(path):
    d = json.loads(path.read_text())
    assert d["analyses"] and d["verdict"]
    assert d["parameters"]["rdm_npz"] and d["parameters"]["models"] == []
    for a in d["analyses"]:
        assert a["n"] >= 4 and -1 <= a["r"] <= 1
    return d


@pytest.mark.slow
def test_one_region_every_image_kind_and_condensed_rdms(tmp_path, zoo_cache):
    """Mixed sizes and kinds of images, one subject's RDM as one condensed vector under key 'rdms'
    (one region, one subject: no noise ceiling): C2 written, no C7."""
    feats = make_image_set(tmp_path / "images")
    np.savez(tmp_path / "rdms.npz", rdms=subject_rdms(feats, n_subjects=1)[0])
    out = run_03(tmp_path, zoo_cache, tmp_path / "rdms.npz", tmp_path / "images")
    d = _records(out / "C2.json")
    assert any("brain_user" in a["analysis"] for a in d["analyses"])
    assert not (out / "C7.json").exists()  # one region: C7 is not tested
    assert "rdms.npz" in d["extra"]["brain_data"]  # the record says which data, read by which policy


@pytest.mark.slow
def test_several_regions_in_mixed_rdm_forms(tmp_path, zoo_cache):
    """Three regions: square with a NaN diagonal, condensed vectors, float32 square: C2 and C7 written."""
    feats = make_image_set(tmp_path / "images", seed=2)
    np.savez(tmp_path / "rdms.npz",
             rdms_EVC=square(subject_rdms(feats, seed=3), diagonal=np.nan),
             rdms_V4=subject_rdms(feats, seed=4),
             rdms_IT=square(subject_rdms(feats, seed=5)).astype(np.float32))
    out = run_03(tmp_path, zoo_cache, tmp_path / "rdms.npz", tmp_path / "images")
    _records(out / "C2.json")
    c7 = _records(out / "C7.json")
    labels = " ".join(a["analysis"] for a in c7["analyses"])
    assert all(f"RSA {r}" in labels for r in ("EVC", "V4", "IT")), labels


@pytest.mark.slow
def test_what_is_really_wrong_stops_with_a_message(tmp_path, zoo_cache):
    """NaN off the diagonal: the notebook stops at setup, naming the file, key, entry and the fix."""
    feats = make_image_set(tmp_path / "images", n=N_IMAGES)
    R = square(subject_rdms(feats))
    R[1, 3, 7] = R[1, 7, 3] = np.nan
    np.savez(tmp_path / "broken.npz", rdms_EVC=square(subject_rdms(feats)), rdms_IT=R)
    with pytest.raises(pm.PapermillExecutionError) as err:
        run_03(tmp_path, zoo_cache, tmp_path / "broken.npz", tmp_path / "images")
    msg = str(err.value)
    for part in ("broken.npz", "key 'rdms_IT'", "subject 1", "R[3, 7]", "fill them in"):
        assert part in msg, (part, msg[-600:])
    assert not (tmp_path / "out" / "C2.json").exists()
