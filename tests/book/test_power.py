"""Power of the claim notebooks' decision rule (lidutils.power) and the paper's numbers (lidutils.paper)."""
import numpy as np
import pytest

from lidutils.book import paper
from lidutils.book.power import PAPER_RS, claim_power, decide, decision_agreement, power, power_at
from lidutils.resampling import rank_rows, resample_ranks
from lidutils.stats import corr, verdict


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LIDUTILS_CACHE_DIR", str(tmp_path))


def test_fast_resampled_ranks_match_rankdata():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 11))
    idx = rng.integers(0, 11, (4, 6, 11))
    ranks = np.argsort(np.argsort(x, 1), 1)
    expected = rank_rows(np.take_along_axis(np.broadcast_to(x[:, None], idx.shape), idx, 2))
    np.testing.assert_allclose(resample_ranks(ranks, idx), expected)


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_decide_matches_stats_verdict_on_a_batch(method):
    out = decision_agreement(n_models=10, r_true=-0.7, n_datasets=40, seed=1, method=method)
    assert out["agreement"] >= 0.85, out
    # clear-cut datasets agree exactly
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 30))
    y = np.stack([-x[0] + 0.1 * rng.standard_normal(30), x[1], rng.standard_normal(30)])
    d = decide(x, y, method=method, n_boot=500)
    exact = [verdict(corr(a, b, method=method)) for a, b in zip(x, y)]
    assert list(d["verdict"]) == exact == ["replicated", "opposite", "inconclusive"]


def test_power_increases_with_n_and_false_positive_rate_is_measured():
    p = [power(-0.84, n, n_sim=300)["power"] for n in (5, 8, 16)]
    assert p[0] < p[1] < p[2]
    assert p[2] > 0.9
    # the CI-only rule: one direction of a 95 % percentile interval; nominal 2.5 %, percentile
    # intervals are liberal at small n (measured ~4-5 % at n = 4..16)
    null = power(0.0, 16, n_sim=2000)
    assert 0.01 < null["power"] < 0.07 and 0.01 < null["opposite"] < 0.07
    assert power(0.5, 16, n_sim=300)["expected_sign"] == 1  # sign follows r_true


def test_power_at_text_validation_and_cache(tmp_path):
    out = power_at(8, -0.84, n_sim=200)
    assert out["text"].startswith("n = 8 models: power ")
    assert 0 < out["power"] < 1
    assert list((tmp_path / "power").glob("*.json"))  # written to the disk cache
    assert power_at(8, -0.84, n_sim=200)["power"] == out["power"]
    with pytest.raises(ValueError, match="r_true"):
        power(1.2, 8)
    with pytest.raises(ValueError, match="n_models"):
        power(-0.8, 2)


def test_claim_power_uses_the_papers_values():
    c3 = claim_power("C3", 12, n_sim=200)
    assert c3["power_r"] == -0.916 and set(c3["power_at"]) == {"-0.3", "-0.5"}
    assert c3["power"] > c3["power_at"]["-0.5"] > c3["power_at"]["-0.3"]
    c4 = claim_power("C4", 12, n_sim=200)
    assert c4["power"] is None and c4["power_r"] == -0.3
    c5 = claim_power("C5", 12, value="accuracy_vs_log_params", n_sim=200)
    assert c5["power_r"] == 0.949 and set(c5["power_at"]) == {"0.3", "0.5"}
    assert claim_power("C1", 3)["power"] is None


def test_paper_table():
    assert [paper.paper_r(c) for c in ("C1", "C2", "C3", "C4", "C5", "C6", "C7")] == [
        -0.838, -0.843, -0.916, None, -0.756, None, -0.596]
    assert paper.paper_r("C5", "accuracy_vs_log_params") == 0.949
    assert paper.expected_sign("C5", "accuracy_vs_log_params") == 1
    assert (paper.paper_k("C1"), paper.paper_k("C2"), paper.paper_k("C3")) == (50, 1000, 50)
    assert paper.PROTOCOL["n_pcs"] == 300 and paper.PROTOCOL["pca_train_fraction"] == 0.8
    assert paper.power_alternatives("C3") == (-0.916, -0.3, -0.5)
    assert PAPER_RS == (-0.838, -0.843, -0.916)
    assert "−0.916" in paper.paper_value("C3")
    assert paper.claim_info("c2")["paper_setting"].startswith("ConvNeXt, EBA")
    with pytest.raises(ValueError, match="claims"):
        paper.paper_r("C9")
    with pytest.raises(ValueError, match="no paper value"):
        paper.paper_r("C1", "x")


def test_coverage_table_fisher_holds_and_percentile_falls_short_at_small_n():
    from lidutils.book.power import coverage_table, min_n_for_coverage

    cov = coverage_table(ns=(4, 9), rs=(0.0, -0.8), n_sim=300, n_boot=200, seed=1)
    c = cov.set_index(["interval", "n", "r_true"])["coverage"].sort_index()
    assert c.loc[("Fisher z", 4)].min() > 0.91  # nominal 0.95, s.e. ~0.013
    assert c.loc[("percentile bootstrap", 4)].mean() < c.loc[("Fisher z", 4)].mean() - 0.05
    assert c.loc[("stratified bootstrap, 3 families", 9)].mean() > 0.85
    assert set(min_n_for_coverage(cov)) == set(cov["interval"])
