"""BDCMF recommender: exact sparse terms against dense computations, the estimators' updates and
bounds, recovery of planted structure, cold start, uncertainty, data loading and the CLI."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pyro.poutine as poutine
import pytest
import torch
from pyro.infer import Trace_ELBO

from pyrobnn.apps.bdcmf import BDCMFSettings, evaluate, fit_bdcmf, fit_point, procrustes_correlation, ranking_metrics
from pyrobnn.apps.bdcmf.als import gaussian_loglik, normal_equations, weighted_sq_error
from pyrobnn.apps.bdcmf.fit import product_std
from pyrobnn.apps.bdcmf.full import cavi_sweep, elbo_terms, fit_full
from pyrobnn.apps.bdcmf.model import Content, Decoder, Encoder, MeanFieldParams, bdcmf_model, mean_field_guide
from pyrobnn.apps.bdcmf.point import estep, estep_objective
from pyrobnn.data import DataError, recsys, recsys_synthetic, split_ratings
from pyrobnn.utils.rng import seeded

TINY = dict(K=3, epochs=4, m_steps=3, pretrain_steps=10, hidden=8, batch_size=64, full_steps=10)


def conf(R, pos, neg):
    """The confidence matrix: ``pos`` where R = 1, ``neg`` elsewhere (float64)."""
    return R * (pos - neg) + neg


def dense(pairs, n, m):
    r = torch.zeros(n, m, dtype=torch.float64)
    r[pairs[:, 0], pairs[:, 1]] = 1.0
    return r


@pytest.fixture(scope="module")
def tiny():
    return recsys_synthetic(30, 40, 25, 3, seed=1, density=0.1, social_density=0.1, doc_length=20)


# ----------------------------------------------------------------------------- exact sparse terms
def test_weighted_terms_equal_dense_computation(tiny):
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(30, 3, generator=gen, dtype=torch.float64)
    v = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    R = dense(tiny.ratings, 30, 40)
    C = conf(R, 1.0, 0.01)
    sq = (C * (R - u @ v.T) ** 2).sum()
    assert torch.allclose(weighted_sq_error(u, v, tiny.ratings, 1.0, 0.01), sq, rtol=1e-10)
    ll = torch.distributions.Normal(u @ v.T, (3.0 * C) ** -0.5).log_prob(R).sum()
    assert torch.allclose(gaussian_loglik(u, v, tiny.ratings, 1.0, 0.01, weight=3.0), ll, rtol=1e-10)
    P, q = normal_equations(tiny.ratings[:, 0], tiny.ratings[:, 1], 30, v, 1.0, 0.01)
    assert torch.allclose(P, torch.einsum("ij,jk,jl->ikl", C, v, v), rtol=1e-10)
    assert torch.allclose(q, (C * R) @ v, rtol=1e-10)


def test_estep_rows_equal_dense_weighted_ridge(tiny):
    s = BDCMFSettings(**TINY, lambda_q=0.7)
    gen = torch.Generator().manual_seed(2)
    u0, v0, g0, mu = (torch.randn(n, 3, generator=gen, dtype=torch.float64) for n in (30, 40, 30, 40))
    u, v, g = estep(u0, v0, g0, mu, tiny.ratings, tiny.social, s, 30, 40)
    R, S = dense(tiny.ratings, 30, 40), dense(tiny.social, 30, 30)
    C, E = conf(R, s.psi1, s.psi2), conf(S, s.psi3, s.psi4)
    eye = torch.eye(3, dtype=torch.float64)
    for i in (0, 7, 29):  # u_i from V, G at their old values
        A = v0.T @ torch.diag(C[i]) @ v0 + s.lambda_q * g0.T @ torch.diag(E[i]) @ g0 + s.lambda_u * eye
        b = v0.T @ (C[i] * R[i]) + s.lambda_q * g0.T @ (E[i] * S[i])
        assert torch.allclose(u[i], torch.linalg.solve(A, b), rtol=1e-9, atol=1e-10)
    for k in (0, 11):  # g_k from the new U
        A = s.lambda_q * u.T @ torch.diag(E[:, k]) @ u + s.lambda_g * eye
        assert torch.allclose(g[k], torch.linalg.solve(A, s.lambda_q * u.T @ (E[:, k] * S[:, k])), rtol=1e-9,
                              atol=1e-10)
    for j in (0, 39):  # v_j from the new U, pulled to μ_j
        A = u.T @ torch.diag(C[:, j]) @ u + s.lambda_v * eye
        b = u.T @ (C[:, j] * R[:, j]) + s.lambda_v * mu[j]
        assert torch.allclose(v[j], torch.linalg.solve(A, b), rtol=1e-9, atol=1e-10)


def test_estep_blocks_never_decrease_the_bound(tiny):
    s = BDCMFSettings(**TINY)
    gen = torch.Generator().manual_seed(3)
    u, v, g, mu = (torch.randn(n, 3, generator=gen, dtype=torch.float64) for n in (30, 40, 30, 40))
    values = [float(estep_objective(u, v, g, mu, tiny.ratings, tiny.social, s))]
    record = lambda *uvg: values.append(float(estep_objective(*uvg, mu, tiny.ratings, tiny.social, s)))  # noqa: E731
    for _ in range(4):
        u, v, g = estep(u, v, g, mu, tiny.ratings, tiny.social, s, 30, 40, callback=record)
    steps = np.diff(values)
    assert len(steps) == 12 and np.all(steps >= -1e-9 * abs(values[-1])), steps
    assert values[-1] > values[0]


def test_em_bound_increases_on_synthetic_data():
    data = recsys_synthetic(60, 80, 50, 3, seed=4, density=0.08, social_density=0.05, doc_length=30)
    state = torch.get_rng_state()
    f = fit_point(data.ratings, 60, 80, BDCMFSettings(**{**TINY, "epochs": 8}), data.social, data.content)
    assert torch.equal(torch.get_rng_state(), state)  # the fit's private seed leaves the caller's stream alone
    obj = np.array([h["objective"] for h in f.history])
    # E-steps are exact ascent; SGVB M-steps are noisy, so the bound rises overall, not necessarily each epoch
    assert obj[-1] > obj[0]
    assert obj[4:].mean() > obj[:4].mean()
    assert np.sum(np.diff(obj) < 0) <= 2, obj


# ----------------------------------------------------------------------------- the full-posterior ELBO
def test_full_elbo_equals_dense_monte_carlo_estimate_with_the_same_draws(tiny):
    s = BDCMFSettings(**{**TINY, "batch_size": 40}, lambda_q=0.5)
    with seeded(5):
        content = Content.of(tiny.content)
        enc, dec = Encoder(25, 8, 3).double(), Decoder(25, 8, 3).double()
        init = {k: 0.3 * torch.randn(n, 3, dtype=torch.float64) for k, n in (("u", 30), ("v", 40), ("g", 30))}
        params = MeanFieldParams(init, 0.2)
    content = Content(content.indptr, content.cols, content.counts.double(), content.totals.double(),
                      content.freq.to(torch.float64), content.n_words)
    args, kwargs = elbo_terms(tiny.ratings, tiny.social, content, 30, 40, s, dec, params, enc)
    with seeded(6):
        loss = Trace_ELBO().loss(bdcmf_model, mean_field_guide, *args, **kwargs)
    with seeded(6):
        tr = poutine.trace(mean_field_guide).get_trace(*args, **kwargs)
    d = {k: tr.nodes[k]["value"] for k in ("u", "v", "g", "z")}
    N = torch.distributions.Normal
    logq = sum(N(*params.loc_scale(k)).log_prob(d[k]).sum() for k in ("u", "v", "g"))
    mu, delta = enc(content.freq)
    logq = logq + N(mu, delta).log_prob(d["z"]).sum()
    R, S = dense(tiny.ratings, 30, 40), dense(tiny.social, 30, 30)
    C, E = conf(R, s.psi1, s.psi2), conf(S, s.psi3, s.psi4)
    logp = (N(0.0, s.lambda_u ** -0.5).log_prob(d["u"]).sum() + N(0.0, s.lambda_g ** -0.5).log_prob(d["g"]).sum()
            + N(0.0, 1.0).log_prob(d["z"]).sum() + N(d["z"], s.lambda_v ** -0.5).log_prob(d["v"]).sum()
            + N(d["u"] @ d["v"].T, C ** -0.5).log_prob(R).sum()
            + N(d["u"] @ d["g"].T, (s.lambda_q * E) ** -0.5).log_prob(S).sum())
    x = tiny.content.to_dense().double()
    logits = dec(d["z"])
    for j in range(40):
        logp = logp + torch.distributions.Multinomial(int(x[j].sum()), logits=logits[j]).log_prob(x[j])
    assert loss == pytest.approx(float((logq - logp).detach()), rel=1e-10)


def dense_block_elbo(mean, var, mu, ratings, social, s):
    """The ELBO's u, g, v part with z fixed at μ, by dense sums: E_q log p(R|u,v) + E_q log p(S|u,g)
    + E_q log p(u) + E_q log p(g) + E_q log N(v | μ, λ_v⁻¹) + H[q(u, g, v)], up to constants."""
    N, M = mean["u"].shape[0], mean["v"].shape[0]
    R, S = dense(ratings, N, M), dense(social, N, N)
    C, E = conf(R, s.psi1, s.psi2), conf(S, s.psi3, s.psi4)

    def expected_sq(a, b, target, w):  # Σ w E[(target − aᵀb)²] for independent diagonal Gaussians
        va, vb = var[a], var[b]
        second = (mean[a] ** 2) @ vb.T + va @ (mean[b] ** 2).T + va @ vb.T
        return (w * ((target - mean[a] @ mean[b].T) ** 2 + second)).sum()

    def prior(x, prec, m0=0.0):
        return -0.5 * prec * (((mean[x] - m0) ** 2).sum() + var[x].sum())

    out = -0.5 * expected_sq("u", "v", R, C) - 0.5 * s.lambda_q * expected_sq("u", "g", S, E)
    out = out + prior("u", s.lambda_u) + prior("g", s.lambda_g) + prior("v", s.lambda_v, mu)
    return out + 0.5 * sum(var[k].log().sum() for k in ("u", "g", "v"))


def test_cavi_sweep_is_exact_coordinate_ascent(tiny):
    s = BDCMFSettings(**TINY, lambda_q=0.7)
    gen = torch.Generator().manual_seed(11)
    mean = {k: torch.randn(n, 3, generator=gen, dtype=torch.float64) for k, n in (("u", 30), ("v", 40), ("g", 30))}
    var = {k: 0.1 + torch.rand(n, 3, generator=gen, dtype=torch.float64) for k, n in (("u", 30), ("v", 40), ("g", 30))}
    mu = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    old = {k: v.clone() for k, v in mean.items()}, {k: v.clone() for k, v in var.items()}
    values = [float(dense_block_elbo(mean, var, mu, tiny.ratings, tiny.social, s))]
    cavi_sweep(mean, var, mu, tiny.ratings, tiny.social, s, 30, 40)
    # q(u_0) against the dense second moments: Λ = Σ_j C_0j E[v_j v_jᵀ] + λ_q Σ_k E_0k E[g_k g_kᵀ] + λ_u I
    R, S = dense(tiny.ratings, 30, 40), dense(tiny.social, 30, 30)
    C, E = conf(R, s.psi1, s.psi2), conf(S, s.psi3, s.psi4)
    (m0, v0), i = old, 0
    second = lambda m, v, w: torch.einsum("j,jk,jl->kl", w, m, m) + torch.diag(w @ v)  # noqa: E731
    lam = second(m0["v"], v0["v"], C[i]) + s.lambda_q * second(m0["g"], v0["g"], E[i]) + s.lambda_u * torch.eye(3)
    b = m0["v"].T @ (C[i] * R[i]) + s.lambda_q * m0["g"].T @ (E[i] * S[i])
    assert torch.allclose(mean["u"][i], torch.linalg.solve(lam, b), rtol=1e-9)
    assert torch.allclose(var["u"][i], 1.0 / lam.diagonal(), rtol=1e-9)
    for _ in range(3):
        values.append(float(dense_block_elbo(mean, var, mu, tiny.ratings, tiny.social, s)))
        cavi_sweep(mean, var, mu, tiny.ratings, tiny.social, s, 30, 40)
    assert np.all(np.diff(values) >= -1e-9 * abs(values[-1])) and values[-1] > values[0], values
    # a block at its optimum: perturbing q(v) lowers the bound
    best = float(dense_block_elbo(mean, var, mu, tiny.ratings, tiny.social, s))
    cavi_sweep(mean, var, mu, tiny.ratings, tiny.social, s, 30, 40)
    at_opt = float(dense_block_elbo(mean, var, mu, tiny.ratings, tiny.social, s))
    for k in ("v",):
        moved = dict(mean, **{k: mean[k] + 1e-3})
        assert float(dense_block_elbo(moved, var, mu, tiny.ratings, tiny.social, s)) < at_opt
        wider = dict(var, **{k: var[k] * 1.01})
        assert float(dense_block_elbo(mean, wider, mu, tiny.ratings, tiny.social, s)) < at_opt
    assert at_opt >= best - 1e-9 * abs(best)


def test_full_by_svi_runs_and_keeps_positive_scales(tiny):
    s = BDCMFSettings(**TINY, estimator="full", full_updates="svi")
    f = fit_full(tiny.ratings, 30, 40, s, tiny.social, tiny.content)
    assert bool((f.u_scale > 0).all()) and bool((f.v_scale > 0).all()) and "elbo" in f.history[-1]
    assert np.isfinite([h["elbo"] for h in f.history if "elbo" in h]).all()


# ----------------------------------------------------------------------------- recovery, cold start, uncertainty
def _recovery(n_users, n_items, n_words, seed, settings, k):
    data = recsys_synthetic(n_users, n_items, n_words, 3, seed=seed, density=0.05, social_density=0.03,
                            doc_length=60)
    split = split_ratings(data, 0.2, 0.15, seed)
    fit = fit_bdcmf(split.train, settings)
    res = evaluate(fit, split, (k,))
    oracle = ranking_metrics(data.truth["u"], data.truth["v"][split.warm_items], split.test, split.train.ratings, (k,))
    oracle_cold = ranking_metrics(data.truth["u"], data.truth["z"][split.cold_items], split.cold_test, None, (k,))
    rand_in, rand_cold = k / split.train.n_items, k / split.cold_items.numel()
    return data, split, fit, res, oracle, oracle_cold, rand_in, rand_cold


def test_recovers_planted_structure_fast():
    k = 10
    data, split, fit, res, oracle, oracle_cold, rand_in, rand_cold = _recovery(
        150, 200, 120, 7, BDCMFSettings(**{**TINY, "epochs": 10, "m_steps": 2, "pretrain_steps": 30}), k)
    # bars: a fraction of the way from a random ranking to the ranking by the planted factors
    # (u_iᵀv_j in-matrix, u_iᵀz_j cold start), which see no noise; 8 training ratings per user here
    assert res["in_matrix"][f"recall@{k}"] > rand_in + 0.4 * (oracle[f"recall@{k}"] - rand_in)
    assert res["cold_start"][f"recall@{k}"] > rand_cold + 0.25 * (oracle_cold[f"recall@{k}"] - rand_cold)
    perm = torch.randperm(150, generator=torch.Generator().manual_seed(0))
    assert procrustes_correlation(fit.u, data.truth["u"]) > procrustes_correlation(fit.u[perm], data.truth["u"]) + 0.3


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["point", "full"])
def test_recovers_planted_structure_larger(estimator):
    k = 50
    s = BDCMFSettings(K=5, epochs=10, m_steps=10, pretrain_steps=100, hidden=32, estimator=estimator, full_steps=100)
    data, split, fit, res, oracle, oracle_cold, rand_in, rand_cold = _recovery(600, 1000, 500, 8, s, k)
    assert res["in_matrix"][f"recall@{k}"] > rand_in + 0.6 * (oracle[f"recall@{k}"] - rand_in)
    assert res["cold_start"][f"recall@{k}"] > rand_cold + 0.4 * (oracle_cold[f"recall@{k}"] - rand_cold)


def test_cold_start_uses_content_only_and_full_posterior_gives_score_sd(tiny):
    split = split_ratings(tiny, 0.2, 0.2, 0)
    fit = fit_bdcmf(split.train, BDCMFSettings(**TINY, estimator="full"))
    counts = split.cold_content
    scores, sd = fit.cold_scores(counts, with_std=True)
    mu, delta = fit.content_codes(counts)
    assert torch.allclose(scores, fit.u @ mu.T)
    # the in-matrix item factors play no part: replacing them changes nothing
    other = replace(fit, v=torch.randn_like(fit.v), v_scale=torch.rand_like(fit.v))
    assert torch.equal(other.cold_scores(counts), scores)
    # permuting the new items' content permutes their scores
    perm = torch.arange(counts.shape[0]).flip(0)
    permuted = counts.to_dense()[perm]
    assert torch.allclose(fit.cold_scores(permuted), scores[:, perm], atol=1e-6)
    assert sd.shape == scores.shape and bool((sd > 0).all())
    pmf = fit_bdcmf(split.train, BDCMFSettings(**TINY, method="pmf"))
    with pytest.raises(ValueError, match="no item content"):
        pmf.cold_scores(counts)


def test_score_sd_matches_monte_carlo():
    gen = torch.Generator().manual_seed(9)
    m, n = torch.randn(4, 3, generator=gen, dtype=torch.float64), torch.randn(5, 3, generator=gen, dtype=torch.float64)
    s, t = torch.rand(4, 3, generator=gen, dtype=torch.float64), torch.rand(5, 3, generator=gen, dtype=torch.float64)
    draws = 40_000
    a = m + s * torch.randn(draws, 4, 3, generator=gen, dtype=torch.float64)
    b = n + t * torch.randn(draws, 5, 3, generator=gen, dtype=torch.float64)
    mc = torch.einsum("dik,djk->dij", a, b).std(0)
    exact = product_std(m, s, n, t)
    # relative s.e. of a sample sd is sqrt((κ − 1) / (4 n)) for kurtosis κ; a sum of products of
    # Gaussians has κ ≤ 9, so sqrt(2 / n) bounds it; allow 5 s.e.
    assert torch.allclose(mc, exact, rtol=5 * math.sqrt(2 / draws))


def test_recall_against_hand_computation():
    u = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    v = torch.tensor([[3.0, 0.0], [2.0, 1.0], [1.0, 2.0], [0.0, 3.0]])
    train = torch.tensor([[0, 0]])
    test = torch.tensor([[0, 2], [0, 3], [1, 1]])
    # user 0 ranks items 1, 2, 3 (0 is a training item): top-2 = {1, 2} -> 1 of 2 test items
    # user 1 ranks 3, 2, 1, 0: top-2 = {3, 2} -> 0 of 1
    r = ranking_metrics(u, v, test, train, ks=(2,))
    assert r["recall@2"] == pytest.approx((0.5 + 0.0) / 2)
    assert r["precision@2"] == pytest.approx((0.5 + 0.0) / 2)


# ----------------------------------------------------------------------------- data
def write(path, text):
    path.write_text(text)
    return path


def test_loader_reads_pairs_graph_and_text(tmp_path):
    r = write(tmp_path / "r.csv", "user,item\n0,1\n1,0\n2,2\n")
    s = write(tmp_path / "s.csv", "user,friend\n0,1\n1,2\n")
    c = write(tmp_path / "c.csv", 'item,text\n0,"Deep nets, deep!"\n1,bayes nets\n2,Bayes\n')
    d = recsys(r, s, c)
    assert (d.n_users, d.n_items) == (3, 3) and d.vocabulary == ["bayes", "deep", "nets"]
    assert d.content.to_dense().tolist() == [[0, 2, 1], [1, 0, 1], [1, 0, 0]]
    x = np.array([[1, 0, 2], [0, 3, 0], [1, 1, 1]])
    np.save(tmp_path / "x.npy", x)
    assert torch.equal(recsys(r, content=tmp_path / "x.npy").content.to_dense(), torch.tensor(x, dtype=torch.float32))


@pytest.mark.parametrize("ratings,social,content,match", [
    ("user,item\n0,1\n5,0\n", None, None, r"r\.csv: column 'user', data row 2 \(line 3\).*id 5 is out of range"),
    ("user,item\n0,1\n1,0\n0,1\n", None, None, r"data row 3.*pair \(0, 1\) repeats data row 1"),
    ("user,item\n0,1\n1,x\n", None, None, r"column 'item', data row 2.*'x' is not a number"),
    ("user,item\n0,1\n1,0.5\n", None, None, r"column 'item'.*not an integer id"),
    ("user,item\n0,1\n1,0\n", "user,friend\n", None, r"s\.csv: the social graph has no edges"),
    ("user,item\n0,1\n1,0\n", "user,friend\n0,3\n", None, r"s\.csv: column 'friend', data row 1.*out of range"),
    ("user,item\n0,1\n1,0\n", None, "npy:0.5", r"x\.npy: at index \(0, 0\): 0\.5 is not a word count"),
    ("user,item\n0,1\n1,0\n", None, "npy:-1", r"not a word count; expected non-negative whole numbers"),
    ("user,item\n0,1\n1,0\n", None, "item,text\n0,a b\n", r"no text for item 1"),
])
def test_loader_bad_input(tmp_path, ratings, social, content, match):
    r = write(tmp_path / "r.csv", ratings)
    s = write(tmp_path / "s.csv", social) if social is not None else None
    c = None
    if content is not None and content.startswith("npy:"):
        np.save(tmp_path / "x.npy", np.array([[float(content[4:]), 1.0], [0.0, 1.0]]))
        c = tmp_path / "x.npy"
    elif content is not None:
        c = write(tmp_path / "c.csv", content)
    with pytest.raises(DataError, match=match):
        recsys(r, s, c, n_users=3 if social is None else None)


def test_data_and_settings_arguments_are_checked():
    with pytest.raises(DataError, match=r"argument ratings at index \(1, 0\): id 9 is out of range"):
        from pyrobnn.data import RecsysData
        RecsysData(3, 3, torch.tensor([[0, 1], [9, 0]]))
    with pytest.raises(ValueError, match="psi1 must exceed psi2"):
        BDCMFSettings(psi1=0.1, psi2=0.5)
    with pytest.raises(ValueError, match="method must be one of"):
        BDCMFSettings(method="svd")
    with pytest.raises(ValueError, match="K must be"):
        recsys_synthetic(10, 10, 10, 0)


def test_synthetic_is_seeded_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a = recsys_synthetic(40, 50, 30, 2, seed=3, density=0.05)
    b = recsys_synthetic(40, 50, 30, 2, seed=3, density=0.05)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a.ratings, b.ratings) and torch.equal(a.truth["u"], b.truth["u"])
    assert abs(a.ratings.shape[0] / (40 * 50) - 0.05) < 0.02


# ----------------------------------------------------------------------------- CLI
def test_cli_fit_and_predict(tmp_path):
    from pyrobnn.cli import main

    spec = write(tmp_path / "spec.toml", """
[data]
synthetic = { n_users = 40, n_items = 60, n_words = 30, K = 2, seed = 0, density = 0.08, social_density = 0.05, doc_length = 20 }
[model]
K = 2
epochs = 2
m_steps = 2
pretrain_steps = 2
hidden = 8
estimator = "full"
full_steps = 2
[evaluate]
ks = [5, 10]
baselines = ["pmf"]
""")
    out = tmp_path / "run"
    assert main(["recommend", "fit", str(spec), "--out", str(out), "-q"]) == 0
    assert {"index.html", "metrics.json", "spec.json", "model"} <= {p.name for p in out.iterdir()}
    assert "pmf (point)" in (out / "metrics.json").read_text()
    assert main(["recommend", "predict", str(out), "--users", "0,3", "--top", "2", "--out", str(tmp_path / "p.csv")]) == 0
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[0] == "user,rank,item,score,score_sd" and len(lines) == 5
    assert main(["recommend", "fit", str(spec), "--out", str(out), "--set", "model.method=svd"]) == 2


# ----------------------------------------------------------------------------- hyperparameters by validation
def test_select_by_validation_is_a_coordinate_search_on_training_pairs_only(tiny):
    from pyrobnn.apps.bdcmf.tuning import select_by_validation

    base = BDCMFSettings(**TINY, method="pmf")
    seen = []

    def fit(data, s):
        seen.append((data.ratings.clone(), s))
        return fit_bdcmf(data, s)

    stages = [("lambda_v", [0.1, 10.0, 1000.0]), ("lambda_u", [0.1, 100.0]), ("lambda_v", [10.0, 0.1])]
    best, trials = select_by_validation(tiny, base, stages, val_fraction=0.25, k=5, seed=3, fit=fit)
    best = best["in_matrix"]
    # the candidates, each fitted once: 3 values of λ_v, one new λ_u, λ_v revisited at the chosen λ_u
    assert len(trials) == len(seen) == 3 + 1 + (1 if best.lambda_u != base.lambda_u else 0)
    # every fit saw the same 75% of the training pairs and never the validation pairs
    split = split_ratings(tiny, 0.25, 0.0, 3)
    key = lambda p: set((p[:, 0] * 40 + p[:, 1]).tolist())  # noqa: E731
    for ratings, _ in seen:
        assert key(ratings) == key(split.train.ratings) and not key(ratings) & key(split.test)
    # each trial's score is the validation recall of its fit, and the choice is the best of each stage
    for t in trials:
        direct = ranking_metrics(t["fit"].u, t["fit"].v, split.test, split.train.ratings, (5,))
        assert t["in_matrix"]["recall@5"] == pytest.approx(direct["recall@5"], abs=1e-12)
    score = {(t["settings"].get("lambda_v", base.lambda_v), t["settings"].get("lambda_u", base.lambda_u)):
             t["in_matrix"]["recall@5"] for t in trials}
    stage1 = {lv: score[(lv, base.lambda_u)] for lv in (0.1, 10.0, 1000.0)}
    lv1 = max(stage1, key=lambda lv: (stage1[lv], -[0.1, 10.0, 1000.0].index(lv)))
    stage2 = {lu: score[(lv1, lu)] for lu in (0.1, 100.0)}
    lu = max(stage2, key=lambda x: (stage2[x], -[0.1, 100.0].index(x)))
    stage3 = {lv: score[(lv, lu)] for lv in (10.0, 0.1)}
    assert best.lambda_u == lu and best.lambda_v == max(stage3, key=lambda x: (stage3[x], -[10.0, 0.1].index(x)))
    with pytest.raises(ValueError, match="lambda_x"):
        select_by_validation(tiny, base, [("lambda_x", [1.0])])
    with pytest.raises(ValueError, match="val_fraction"):
        select_by_validation(tiny, base, [("lambda_v", [1.0])], val_fraction=1.0)
    with pytest.raises(ValueError, match="cold_fraction > 0"):
        select_by_validation(tiny, base, [("lambda_v", [1.0])], criteria=("cold_start",))


def test_select_by_validation_cold_start_scores_held_out_items_from_content(tiny):
    from pyrobnn.apps.bdcmf.tuning import select_by_validation

    base = BDCMFSettings(**{**TINY, "epochs": 2, "pretrain_steps": 2, "m_steps": 1}, method="ctr")
    best, trials = select_by_validation(tiny, base, [("lambda_v", [0.1, 100.0])], val_fraction=0.2, k=5, seed=2,
                                        cold_fraction=0.2, criteria=("in_matrix", "cold_start"))
    assert len(trials) == 2  # both searches share the two fits
    split = split_ratings(tiny, 0.2, 0.2, 2)
    for t in trials:
        assert t["fit"].v.shape[0] == split.train.n_items  # fitted without the held-out items
        mu, _ = t["fit"].content_codes(split.cold_content)
        direct = ranking_metrics(t["fit"].u, mu, split.cold_test, None, (5,))
        assert t["cold_start"]["recall@5"] == pytest.approx(direct["recall@5"], abs=1e-12)
    for criterion in ("in_matrix", "cold_start"):
        r = [t[criterion]["recall@5"] for t in trials]
        assert best[criterion].lambda_v == (0.1 if r[0] >= r[1] else 100.0)
