"""Model zoo: real training on Animal-MNIST, caching, resume, determinism, dedup."""
from __future__ import annotations

import os

import numpy as np
import pytest

from lidutils.book import zoo, zoo_data, zoo_training
from lidutils.book.zoo import (
    GRIDS, ZooEntry, deduplicate, load_animal_mnist, load_embeddings, prepare_probe, train_zoo, zoo_summary)

# A cheap grid for the cache/resume/determinism tests (MLP + a BatchNorm CNN).
MINI = [ZooEntry("mlp", 32, 1, 0.2, epochs=(1, 2)),
        ZooEntry("cnn", 4, 2, 0.05, epochs=(1,)),
        ZooEntry("mlp", 64, 2, 0.1, 0.5, epochs=(2,))]


def _probe(n=6, seed=0):
    """Synthetic probe: dark blobs on a white background, like the Algonauts photos."""
    rng = np.random.default_rng(seed)
    img = np.full((n, 40, 40, 3), 255, np.uint8)
    for i in range(n):
        r, c = rng.integers(5, 20, size=2)
        img[i, r:r + 15, c:c + 15] = rng.integers(0, 80, size=3)
    return img


_REAL_TRAIN_ENTRY = zoo_training._train_entry


class Interrupted(Exception):
    """Stands in for a crash or Ctrl-C in the middle of a zoo run."""


class Counter:
    """Wraps zoo_training._train_entry: counts calls, optionally raises after ``fail_after`` calls."""

    def __init__(self, fail_after=None):
        self.calls, self.fail_after, self.real = [], fail_after, _REAL_TRAIN_ENTRY

    def __call__(self, entry, *args, **kw):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise Interrupted("simulated interruption")
        self.calls.append(entry.key)
        return self.real(entry, *args, **kw)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    cache = tmp_path_factory.mktemp("zoo_smoke")
    return cache, train_zoo("smoke", cache_dir=cache, probe_images=_probe(), progress=False)


def test_dedup_animal_mnist():
    images, labels, info = load_animal_mnist(return_info=True)
    assert info["n_in"] == 10_000 and info["n_removed"] == 284 and info["n_duplicate_groups"] == 284
    assert images.shape == (9716, 28, 28) and images.dtype == np.uint8
    assert len(np.unique(images.reshape(len(images), -1), axis=0)) == len(images)
    raw, raw_labels, _ = load_animal_mnist(deduplicate_images=False, return_info=True)
    assert len(raw) == 10_000 and np.bincount(raw_labels).tolist() == [1000] * 10


def test_dedup_conflicting_labels_dropped():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, size=(6, 4, 4), dtype=np.uint8)
    x[3] = x[0]          # same label: keep one copy
    x[4] = x[1]          # conflicting label: drop both
    y = np.array([0, 1, 2, 0, 3, 2])
    xd, yd, info = deduplicate(x, y)
    assert info["n_removed"] == 3 and info["n_conflicting_groups"] == 1
    assert info["n_conflicting_removed"] == 2
    assert info["kept_index"].tolist() == [0, 2, 5]
    np.testing.assert_array_equal(yd, [0, 2, 2])


def test_split_has_no_test_image_in_train():
    data = zoo.ZooData(None, None)
    assert len(set(data.train_idx) & set(data.test_idx)) == 0
    flat = (data.raw.reshape(len(data.raw), -1).numpy() * 255).round().astype(np.uint8)
    tr = {r.tobytes() for r in flat[data.train_idx]}
    assert not any(r.tobytes() in tr for r in flat[data.test_idx])
    assert len(data.eval_idx) == 1000 and set(data.eval_idx) <= set(data.test_idx)
    # stratified: class shares of the evaluation set match the (deduplicated) data
    share = np.bincount(data.labels) / len(data.labels)
    assert np.abs(np.bincount(data.labels[data.eval_idx]) / 1000 - share).max() < 0.002


def test_smoke_grid_learns_and_differs(smoke):
    _, table = smoke
    assert table["key"].nunique() == len(GRIDS["smoke"]) == 4
    assert len(table) == sum(len(e.epochs) for e in GRIDS["smoke"])
    final = table[table["final"]].set_index("name")["test_acc"]
    assert (final > 0.2).all(), final          # chance is 0.1
    # capacity: wider MLP generalizes better at equal data and epochs
    assert final["mlp-w128-d2-f1-n0-s0"] > final["mlp-w16-d1-f1-n0-s0"] + 0.03
    # data scale: 5 % of the data is clearly worse than all of it
    assert final["mlp-w128-d2-f1-n0-s0"] > final["mlp-w128-d2-f0.05-n0-s0"] + 0.1
    row = table.iloc[0]
    assert row["n_params"] > 0 and 0 <= row["dead_fraction"] <= 1 and row["examples_seen"] > 0
    emb = load_embeddings(row, which="eval")
    assert emb.shape == (1000, row["embed_dim"]) and emb.dtype == np.float32
    assert np.isfinite(emb).all()
    assert load_embeddings(row, which="probe").shape == (6, row["embed_dim"])
    # dead units: a unit is dead iff it is zero on every evaluation image
    np.testing.assert_allclose(row["dead_fraction"], (emb.max(0) <= 0).mean())


def test_rerun_is_a_cache_hit(smoke, monkeypatch):
    cache, table = smoke
    counter = Counter()
    monkeypatch.setattr(zoo_training, "_train_entry", counter)
    again = train_zoo("smoke", cache_dir=cache, probe_images=_probe(), progress=False)
    assert counter.calls == []
    assert again[["member", "test_acc"]].equals(table[["member", "test_acc"]])


def test_new_probe_embedded_from_checkpoints(smoke, monkeypatch):
    cache, table = smoke
    counter = Counter()
    monkeypatch.setattr(zoo_training, "_train_entry", counter)
    other = train_zoo("smoke", cache_dir=cache, probe_images=_probe(n=4, seed=1), progress=False)
    assert counter.calls == []
    assert load_embeddings(other.iloc[0], which="probe").shape == (4, other.iloc[0]["embed_dim"])


def test_changed_entry_retrains_only_that_entry(smoke, monkeypatch):
    cache, _ = smoke
    grid = list(GRIDS["smoke"])
    grid[2] = ZooEntry("mlp", 128, 2, 0.05, epochs=(1, 2), seed=5)  # was seed 0
    counter = Counter()
    monkeypatch.setattr(zoo_training, "_train_entry", counter)
    table = train_zoo(grid, cache_dir=cache, probe_images=_probe(), progress=False)
    assert counter.calls == [grid[2].key]
    assert table["key"].unique().tolist() == [e.key for e in grid]
    assert zoo_summary(cache)["key"].nunique() == 5  # the old entry stays cached


def test_resume_after_interruption(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo_training, "_train_entry", Counter(fail_after=1))
    with pytest.raises(Interrupted):
        train_zoo(MINI, cache_dir=tmp_path, probe_images=_probe(), progress=False)
    done = zoo_summary(tmp_path)
    assert done["key"].unique().tolist() == [MINI[0].key]
    first_ckpt = done["ckpt_path"].iloc[0]
    mtime = os.stat(first_ckpt).st_mtime_ns
    counter = Counter()
    monkeypatch.setattr(zoo_training, "_train_entry", counter)
    table = train_zoo(MINI, cache_dir=tmp_path, probe_images=_probe(), progress=False)
    assert counter.calls == [MINI[1].key, MINI[2].key]
    assert os.stat(first_ckpt).st_mtime_ns == mtime
    assert len(table) == 4
    noisy = table[table["label_noise"] == 0.5].iloc[0]
    n = noisy["n_train"]                               # symmetric noise: exactly half the labels are wrong
    assert noisy["label_noise_actual"] == round(0.5 * n) / n
    assert noisy["train_acc_clean"] != noisy["train_acc"]


def test_same_seed_same_results(tmp_path):
    a = train_zoo(MINI[:2], cache_dir=tmp_path / "a", probe_images=_probe(), progress=False)
    b = train_zoo(MINI[:2], cache_dir=tmp_path / "b", probe_images=_probe(), progress=False)
    np.testing.assert_array_equal(a["test_acc"], b["test_acc"])
    np.testing.assert_array_equal(a["train_loss"], b["train_loss"])
    for (_, ra), (_, rb) in zip(a.iterrows(), b.iterrows()):
        for which in ("eval", "probe"):
            np.testing.assert_array_equal(load_embeddings(ra, which), load_embeddings(rb, which))
    c = train_zoo([ZooEntry("mlp", 32, 1, 0.2, epochs=(1, 2), seed=1)], cache_dir=tmp_path / "a",
                  probe_images=_probe(), progress=False)
    assert not np.array_equal(load_embeddings(c.iloc[-1]), load_embeddings(a.iloc[1]))


def test_load_embeddings_by_key_and_errors(smoke):
    cache, table = smoke
    row = table.iloc[1]
    np.testing.assert_array_equal(load_embeddings(row["member"], cache_dir=cache), load_embeddings(row))
    last = table[table["key"] == row["key"]]["epoch"].max()
    np.testing.assert_array_equal(
        load_embeddings(row["key"], cache_dir=cache),
        load_embeddings(f"{row['key']}@{last}", cache_dir=cache))
    with pytest.raises(ValueError, match="which"):
        load_embeddings(row, which="train")
    with pytest.raises(ValueError, match="no zoo network"):
        load_embeddings("0123456789abcdef0000", cache_dir=cache)
    with pytest.raises(ValueError, match="epochs"):
        load_embeddings(row["key"], cache_dir=cache, epoch=99)


def test_entry_validation_and_keys():
    e = ZooEntry("mlp", 32, 1, epochs=[1, 3])
    assert e.epochs == (1, 3) and e.key == ZooEntry("mlp", 32, 1, epochs=(1, 3)).key
    assert e.key != ZooEntry("mlp", 32, 1, epochs=(1, 4)).key
    with pytest.raises(ValueError, match="unknown arch"):
        ZooEntry("transformer", 32, 1)
    with pytest.raises(ValueError, match="increasing"):
        ZooEntry("mlp", 32, 1, epochs=(3, 1))
    with pytest.raises(ValueError, match="label_noise"):
        ZooEntry("mlp", 32, 1, label_noise=1.0)
    with pytest.raises(ValueError, match="unknown grid"):
        train_zoo("huge")
    with pytest.raises(ValueError, match="same entry twice"):
        zoo.resolve_grid([e, e])
    assert len(GRIDS["default"]) >= 32
    assert len({x.key for x in GRIDS["default"]}) == len(GRIDS["default"])


def test_prepare_probe_matches_training_polarity():
    reference = zoo_data._as_nchw(load_animal_mnist()[0][:50])      # white on black
    probe = _probe()                                           # dark on white
    t, inverted = prepare_probe(probe, (1, 28, 28), reference=reference)
    assert inverted and t.shape == (6, 1, 28, 28)
    assert zoo_data._border_mean(t) < 0.5                           # background now dark
    gray = np.repeat(probe[..., :1], 3, axis=-1)
    t1, _ = prepare_probe(gray, (1, 28, 28), reference=reference)
    t2, inv2 = prepare_probe(255 - gray[..., 0], (1, 28, 28), reference=reference)  # already dark
    assert not inv2 and np.allclose(t2.numpy(), t1.numpy(), atol=2 / 255)
    with pytest.raises(ValueError, match="probe_images"):
        prepare_probe(np.zeros((2, 3)), (1, 28, 28), reference=reference)


def test_custom_images_validation():
    with pytest.raises(ValueError, match="labels"):
        train_zoo("smoke", images=np.zeros((10, 8, 8), np.uint8), labels=None)
    with pytest.raises(ValueError, match="shape"):
        zoo_data._as_nchw(np.zeros((10, 8), np.uint8))


def test_cli_summary(smoke, capsys, tmp_path):
    from lidutils.book.cli import main

    cache, _ = smoke
    assert main(["zoo", "summary", "--cache-dir", str(cache), "--csv", str(tmp_path / "z.csv")]) == 0
    out = capsys.readouterr().out
    assert "mlp-w128-d2-f1-n0-s0" in out and "networks" in out
    assert (tmp_path / "z.csv").exists()
    assert main(["zoo", "summary", "--cache-dir", str(tmp_path / "empty")]) == 1
    with pytest.raises(SystemExit):
        main(["zoo", "train", "--grid", "nope"])


# --------------------------------------------------------------------------- controlled design

def _controlled_entries():
    return [e for g in zoo.DESIGNS for e in GRIDS[g]]


def test_embedding_width_is_the_same_for_every_family_and_size():
    import torch

    from lidutils.archs import build_model

    seen = set()
    for e in _controlled_entries():
        if (e.arch, e.width, e.depth) in seen:
            continue
        seen.add((e.arch, e.width, e.depth))
        model = build_model(e.arch, (1, 28, 28), 10, e.width, e.depth, e.embed_dim).eval()
        with torch.no_grad():
            emb = model.features(torch.zeros(3, 1, 28, 28))
        assert e.embed_dim == zoo.EMBED_DIM and model.embed_dim == zoo.EMBED_DIM
        assert emb.shape == (3, zoo.EMBED_DIM), (e.name, emb.shape)
        assert model.head.in_features == zoo.EMBED_DIM
    assert {a for a, _, _ in seen} == {"mlp", "convnet", "mixer"} and len(seen) >= 12


def test_controlled_design_meets_the_stated_factorial_design():
    t = zoo.design_table("controlled")
    assert zoo.GRID_DATA["controlled"] == "fashion-mnist" and t["design"].is_unique
    assert (t["seeds"].map(len) >= 3).all() and len(GRIDS["controlled"]) == t["seeds"].map(len).sum()
    assert t["family"].nunique() >= 3 and (t["embed_dim"] == zoo.EMBED_DIM).all()
    for fam, f in t.groupby("family"):
        clean = f[f["label_noise"] == 0]
        assert len(clean) >= 8, fam                                       # distinct clean designs
        cap = f[f["in_capacity"]]
        assert cap["capacity_level"].nunique() >= 4 and cap["n_train"].nunique() == 1
        assert cap["params"].max() / cap["params"].min() >= 30, fam         # capacity spans >= 30x
        dat = f[f["in_data"]]
        assert dat["n_train"].nunique() >= 5 and dat["params"].nunique() == 1
        assert dat["n_train"].max() / dat["n_train"].min() >= 50           # data spans >= 50x
        noi = f[f["in_noise"]]
        assert sorted(noi["label_noise"]) == [0.0, 0.2, 0.4] and noi["params"].nunique() == 1
        assert noi["n_train"].nunique() == 1
    # every network's row carries its cell; replicates share it
    cells = {e.key: e.cell["design"] for e in GRIDS["controlled"]}
    assert len(set(cells.values())) == len(t)
    animal = zoo.design_table("controlled-animal")
    assert animal["family"].nunique() >= 3 and zoo.GRID_DATA["controlled-animal"] == "animal-mnist"
    # every data level fits its training split (Fashion-MNIST: 60 000 training images)
    assert t["n_train"].max() <= 60_000
    assert animal["n_train"].max() == len(zoo.ZooData(None, None, dataset="animal-mnist").train_idx)


def test_convergence_rule():
    flat = zoo.convergence([0.5, 0.8, 0.9, 0.905, 0.91, 0.905, 0.91], [1.0, 0.5, 0.3, 0.29, 0.28, 0.28, 0.27])
    assert flat["converged"] and flat["conv_slope"] == pytest.approx(0.001)    # lstsq slope of the last 4
    assert flat["conv_threshold"] == zoo.CONVERGENCE_MARGIN and flat["conv_acc_range"] == pytest.approx(0.005)
    assert flat["conv_loss_change"] == pytest.approx((0.27 - 0.3) / 0.3)
    rising = [0.5, 0.8, 0.9, 0.92, 0.94, 0.96, 0.98]                        # 2 points per epoch
    assert not zoo.convergence(rising)["converged"]
    # the same rise on 50 images is within binomial noise (2 SE of the slope ~ 0.028)
    assert zoo.convergence(rising, n_train=50)["converged"]
    assert not zoo.convergence(rising, n_train=50_000)["converged"]
    assert not zoo.convergence([0.9, 0.9, 0.9, 0.9])["converged"]           # too few epochs to tell


@pytest.fixture(scope="module")
def controlled_smoke(tmp_path_factory):
    cache = tmp_path_factory.mktemp("zoo_controlled")
    return cache, train_zoo("controlled-smoke", cache_dir=cache, probe_images=_probe(), progress=False)


def test_controlled_smoke_rows_carry_design_convergence_and_curves(controlled_smoke):
    _, table = controlled_smoke
    for col in ("design", "capacity_level", "data_level", "in_capacity", "in_data", "in_noise", "converged",
                "conv_acc_range", "n_train", "data_set"):
        assert col in table, col
    assert (table["embed_dim"] == zoo.EMBED_DIM).all() and (table["data_set"] == "animal-mnist").all()
    assert set(table["n_train"]) == {300, 1000}
    final = table[table["final"]]
    curve = zoo.load_learning_curve(final.iloc[0])
    assert curve["epoch"].tolist() == list(range(1, final.iloc[0]["epoch"] + 1))
    # the stored flag is the rule applied to the stored curve
    for _, row in final.iterrows():
        c = zoo.load_learning_curve(row)
        assert row["converged"] == zoo.convergence(c["train_acc"], c["train_loss"], row["n_train"])["converged"]
    # warm-up then cosine decay to ~0
    assert curve["lr"].iloc[-1] < 0.01 * curve["lr"].max()
    first = table[table["epoch"] == table.groupby("key")["epoch"].transform("min")]
    assert not first["converged"].any()                                   # 1 epoch: cannot be judged
    noisy = final[final["label_noise"] > 0]
    assert (noisy["label_noise_actual"] == noisy["label_noise"]).all()


def test_shift_augmentation_translates():
    import torch

    x = torch.arange(2 * 5 * 5, dtype=torch.float32).view(2, 1, 5, 5)
    gen = torch.Generator().manual_seed(0)
    out = zoo_training._shift_batch(x, 1, gen, torch.tensor([-1.0]))
    assert out.shape == x.shape
    for i in range(2):
        o = out[i, 0]
        # every image is its original moved by at most one pixel, padded with the fill value
        hits = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                if torch.equal(o, torch.nn.functional.pad(x[i, 0], (1, 1, 1, 1), value=-1.0)[
                    1 + dy:6 + dy, 1 + dx:6 + dx])]
        assert len(hits) == 1


def test_penalty_hook_called_only_with_a_weight(tmp_path, monkeypatch):
    calls = []

    def batch_penalty(emb, kind, k):
        calls.append((tuple(emb.shape), kind, k))
        return emb.pow(2).mean()

    monkeypatch.setattr(zoo_training, "batch_penalty", batch_penalty)  # imported at module top there
    base = dict(arch="mlp", width=16, depth=1, n_train=200, epochs=(2,), embed_dim=16, schedule="cosine")
    plain = train_zoo([ZooEntry(**base)], cache_dir=tmp_path, probe_images=_probe(), progress=False)
    assert calls == []                                                    # weight 0: nothing computed
    pen = train_zoo([ZooEntry(**base, penalty="lid", penalty_weight=0.5, penalty_k=5)], cache_dir=tmp_path,
                    probe_images=_probe(), progress=False)
    assert calls and all(c[1:] == ("lid", 5) and c[0][1] == 16 for c in calls)
    assert pen["train_loss"].iloc[0] != plain["train_loss"].iloc[0]
    assert pen["penalty_weight"].iloc[0] == 0.5 and "plid0.5" in pen["name"].iloc[0]
    with pytest.raises(ValueError, match="penalty kind"):
        ZooEntry(**base, penalty_weight=1.0)


@pytest.mark.slow
def test_two_workers_bit_identical_to_serial(tmp_path):
    grid = [ZooEntry("mlp", 16, 1, n_train=300, epochs=(2,), embed_dim=32, schedule="cosine", augment=2),
            ZooEntry("convnet", 2, 1, n_train=300, epochs=(2,), embed_dim=32, schedule="cosine", augment=2,
                     label_noise=0.2)]
    a = train_zoo(grid, cache_dir=tmp_path / "a", probe_images=_probe(), progress=False)
    b = train_zoo(grid, cache_dir=tmp_path / "b", probe_images=_probe(), progress=False, num_workers=2)
    np.testing.assert_array_equal(a["test_acc"], b["test_acc"])
    np.testing.assert_array_equal(a["train_loss"], b["train_loss"])
    for (_, ra), (_, rb) in zip(a.iterrows(), b.iterrows()):
        np.testing.assert_array_equal(load_embeddings(ra), load_embeddings(rb))


def test_cli_train_and_design(controlled_smoke, capsys):
    from lidutils.book.cli import main

    cache, table = controlled_smoke
    assert main(["zoo", "train", "--grid", "controlled-smoke", "--cache-dir", str(cache), "--workers", "1",
                 "--no-progress"]) == 0                                   # all cached: loads, trains nothing
    out = capsys.readouterr().out
    assert f"{table['key'].nunique()} networks" in out and "converged" in out
    assert main(["zoo", "design", "--grid", "controlled"]) == 0
    out = capsys.readouterr().out
    assert "30 design cells, 90 networks" in out and "mixer-c3-d1-n0" in out
