"""Paper tier dry run: stand-in NSD layout, untrained timm models of every paper family, bundles, maps, hf."""
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from scipy import stats  # noqa: E402

from lidutils.features import extract  # noqa: E402
from lidutils.models import PAPER_MODELS  # noqa: E402
from lidutils.nsd import load_algonauts2023  # noqa: E402
from lidutils.book.paper_tier import (
    DRY_RUN_MODELS, build_paper_population, dry_run, hf_model_from_config, lid_r2_map, paper_model, read_bundle, to_fsaverage5, vertexwise_corr)
from lidutils.standins import N_FSAVERAGE5, make_nsd_layout  # noqa: E402

# one model of each paper family (ConvNeXt, ResNet, ResMLP, MAE-ViT), untrained, 32 px
TINY = ["convnext_atto.d2_in1k", "resnet18.tv_in1k", "resmlp_12_224.fb_in1k", "vit_base_patch16_224.mae"]
ROIS = ("V1", "V3", "EBA", "FFA")


@pytest.fixture(scope="module")
def dry(tmp_path_factory):
    d = tmp_path_factory.mktemp("paper")
    w = make_nsd_layout(d / "nsd", n_subjects=2, n_images=30, n_vertices=(400, 300), image_size=32, rois=ROIS)
    run = build_paper_population(d / "nsd", weights="random", models=TINY, subjects=(1, 2), rois=ROIS,
                                 image_size=32, n_pcs=10, n_folds=2, device="cpu", cache_dir=d / "cache",
                                 bundle_dir=d / "bundle")
    return d, w, run


@pytest.mark.slow  # one end-to-end dry run (module fixture): ~15 s idle, more on a loaded CPU
def test_dry_run_covers_every_family_and_is_marked(dry):
    _, w, run = dry
    assert set(PAPER_MODELS["family"]) == set(PAPER_MODELS.set_index("name").loc[list(DRY_RUN_MODELS), "family"])
    m = run.members
    assert list(m.index) == TINY and set(m["family"]) == {"ConvNeXt", "ResNet", "ResMLP", "MAE-ViT"}
    published = PAPER_MODELS.set_index("name")["top1"]
    np.testing.assert_array_equal(m["accuracy"], published.loc[TINY])  # metadata: published top-1 (MAE: NaN)
    assert (~m["pretrained"]).all() and m["dry_run"].all() and (m["input_size"] == 32).all()
    assert run.meta["tier"] == "paper-dryrun" and run.dry_run and run.brain["dry_run"].all()
    # one brain score per model x ROI x subject; ceilings are the planted signal fractions
    assert len(run.brain) == len(TINY) * len(ROIS) * 2
    assert set(run.brain.columns) >= {"model", "roi", "subject", "score", "noise_ceiling", "score_normalized"}
    nc = run.ceilings.set_index(["subject", "roi"])["noise_ceiling"]
    for roi in ROIS:
        assert nc.loc[(1, roi)] == pytest.approx(w.signal[roi], rel=1e-6)
    # features: one row per image of each subject, eval_reps = first subject
    for s in (1, 2):
        assert {X.shape[0] for X in run.reps[s].values()} == {30}
    assert run.eval_reps is run.reps[1]
    # an image shared by both subjects (same NSD id) has the same features in both
    nid = np.intersect1d(w.nsd_ids[1], w.nsd_ids[2])[0]
    i1, i2 = (np.flatnonzero(w.nsd_ids[s] == nid)[0] for s in (1, 2))
    np.testing.assert_array_equal(run.reps[1]["resnet18.tv_in1k"][i1], run.reps[2]["resnet18.tv_in1k"][i2])
    # per-vertex R²: finite exactly on the ROI vertices; its ROI median is the brain score
    nsd = load_algonauts2023(dry[0] / "nsd", subject=2, rois=ROIS)
    v = run.vertex_r2[2]["resnet18.tv_in1k"]
    roi_vertices = np.unique(np.concatenate([nsd.vertices[r]["lh"] for r in ROIS]))
    assert np.isfinite(v["lh"]).sum() == roi_vertices.size and np.isfinite(v["lh"][roi_vertices]).all()
    eba = np.concatenate([v[h][nsd.vertices["EBA"][h]] for h in ("lh", "rh")])
    row = run.brain.query("model == 'resnet18.tv_in1k' and subject == 2 and roi == 'EBA'")
    assert row["score"].item() == pytest.approx(np.median(eba))


@pytest.mark.slow  # one end-to-end dry run (module fixture): ~15 s idle, more on a loaded CPU
def test_bundle_round_trip_and_no_mixing(dry):
    d, _, run = dry
    back = read_bundle(d / "bundle")
    pd.testing.assert_frame_equal(back.members, run.members)
    pd.testing.assert_frame_equal(back.brain, run.brain)
    pd.testing.assert_frame_equal(back.ceilings, run.ceilings)
    assert back.meta == run.meta and back.images == run.images
    for s in run.meta["subjects"]:
        for name in TINY:
            np.testing.assert_array_equal(back.reps[s][name], run.reps[s][name])
            for h in ("lh", "rh"):
                np.testing.assert_array_equal(back.vertex_r2[s][name][h], run.vertex_r2[s][name][h])
        for h in ("lh", "rh"):
            np.testing.assert_array_equal(back.fsaverage_index[s][h], run.fsaverage_index[s][h])
    # a notebook pointed at the bundle needs neither the data nor the models
    again = build_paper_population(None, weights="random", bundle_dir=d / "bundle")
    pd.testing.assert_frame_equal(again.brain, run.brain)
    # dry_run(workdir) finds <workdir>/nsd (a stand-in) and <workdir>/bundle: nothing is recomputed
    pd.testing.assert_frame_equal(dry_run(d, models=TINY).brain, run.brain)


@pytest.mark.slow
def test_one_command_reads_the_bundle(dry, capsys):
    from lidutils.book.cli import main

    d, _, run = dry
    assert main(["paper-tier", "dryrun", str(d), "--models", *TINY, "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "paper-dryrun" in out and "never results" in out and "resmlp_12_224.fb_in1k" in out
    with pytest.raises(ValueError, match="never mixed"):
        read_bundle(d / "bundle", expect_dry_run=False)
    with pytest.raises(ValueError, match="weights='random'"):
        build_paper_population(None, weights="pretrained", bundle_dir=d / "bundle")
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        read_bundle(d / "nothing")


@pytest.mark.slow  # one end-to-end dry run (module fixture): ~15 s idle, more on a loaded CPU
def test_surface_map_from_the_generated_layout(dry):
    from lidutils.book.plotting import surface_maps

    _, _, run = dry
    maps = run.vertex_r2[1]["convnext_atto.d2_in1k"]
    fs = run.fsaverage_index[1]
    fig = surface_maps(maps, fs, title="dry run")
    assert len(fig.axes) >= 2 and sum(ax.name == "3d" for ax in fig.axes) == 2
    tex = to_fsaverage5(maps["lh"], fs["lh"])
    on5 = fs["lh"] < N_FSAVERAGE5
    assert tex.shape == (N_FSAVERAGE5,) and np.isfinite(tex).sum() == np.isfinite(maps["lh"][on5]).sum() > 0
    np.testing.assert_array_equal(tex[fs["lh"][on5]], maps["lh"][on5])
    # C7 as a map: per-vertex correlation across models of a model score and R²
    Y = np.stack([run.vertex_r2[1][m]["lh"] for m in TINY])
    x = np.arange(len(TINY), dtype=float) ** 1.5
    r = vertexwise_corr(x, Y)
    j = np.flatnonzero(np.isfinite(r))[:5]
    np.testing.assert_allclose(r[j], [stats.pearsonr(x, Y[:, i])[0] for i in j], atol=1e-12)
    assert np.isnan(r[~np.isfinite(Y).all(0)]).all()
    np.testing.assert_array_equal(lid_r2_map(run, dict(zip(TINY, x)), 1)["lh"], r)
    fig = surface_maps({"lh": r}, fs, label="r(LID, R²)")
    import matplotlib.pyplot as plt

    plt.close("all")


def test_paper_model_arguments():
    with pytest.raises(ValueError, match="weights='random' only"):
        paper_model("resnet18.tv_in1k", "pretrained", image_size=64)
    with pytest.raises(ValueError, match="weights must be"):
        paper_model("resnet18.tv_in1k", "imagenet")
    with pytest.raises(ValueError, match="not a timm architecture"):
        paper_model("resnet9000.x", "random")
    a, ia = paper_model("resnet18.tv_in1k", "random", image_size=48, seed=3)
    b, _ = paper_model("resnet18.tv_in1k", "random", image_size=48, seed=3)
    assert ia.name == "random:resnet18.tv_in1k@48px" and ia.input_size == (3, 48, 48) and ia.top1 == 69.760
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("kind", ["convnext", "vit"])
def test_transformers_model_from_config_goes_through_extract(tmp_path, kind):
    """The hf: route's wrapper on a config-built model: pooled output, hooks and cache."""
    from timm.data import create_transform
    from transformers import ConvNextConfig, ViTConfig

    if kind == "convnext":
        cfg = ConvNextConfig(depths=[1, 1, 1, 1], hidden_sizes=[8, 16, 32, 64], image_size=32)
        hook = "hf.encoder.stages.1"
    else:
        cfg = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64)
        hook = None  # first transformer block: hf.layers.0 (transformers 5) or hf.encoder.layer.0 (4.x)
    model, info = hf_model_from_config(cfg, seed=1)
    import re

    from lidutils.features import layer_names

    hook = hook or next(n for n in layer_names(model) if re.fullmatch(r"hf\.(encoder\.)?layers?\.0", n))
    imgs = np.random.default_rng(0).integers(0, 255, (6, 40, 40, 3), dtype=np.uint8)
    X = extract((model, info), imgs, cache_dir=tmp_path, progress=False, batch_size=4)
    t = create_transform(**info.preprocessing)
    from PIL import Image

    batch = torch.stack([t(Image.fromarray(im)) for im in imgs])
    with torch.inference_mode():
        pooled = model.hf(pixel_values=batch).pooler_output.flatten(1).numpy()
    np.testing.assert_allclose(X, pooled, rtol=1e-4, atol=1e-5)
    assert len(list(tmp_path.rglob("*.npz"))) == 1
    np.testing.assert_array_equal(extract((model, info), imgs, cache_dir=tmp_path, progress=False), X)
    H = extract((model, info), imgs, layer=hook, cache_dir=False, progress=False)
    assert H.shape[0] == 6 and H.shape[1] in (16, 32)
    other, _ = hf_model_from_config(cfg, seed=2)  # another seed: other weights, other cache entry
    assert not np.allclose(extract(other, imgs, cache_dir=tmp_path, progress=False), X)
