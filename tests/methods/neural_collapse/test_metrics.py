# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""NC1-NC4: streaming reduced form vs the store-everything pinv reference, ETF case, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from monai_fair.methods.neural_collapse import (
    NC_METRIC_NAMES,
    NeuralCollapseAccumulator,
    classifier_from_linear,
    compute_neural_collapse,
)
from tests.methods.neural_collapse.nc_reference import compute_neural_collapse_reference


def _random_data(n=400, d=24, c=3, k=2, offset=5.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, c, (n,), generator=gen)
    g = torch.randint(0, k, (n,), generator=gen)
    mu = 3 * torch.randn(c, d, generator=gen)
    h = mu[y] + torch.randn(n, d, generator=gen) + 0.5 * g[:, None] + offset
    w = torch.randn(c, d, generator=gen)
    b = torch.randn(c, generator=gen)
    return h, y, g, w, b


def _assert_rows_close(a, r, atol=1e-5):
    rows = [("overall", a["overall"], r["overall"])] + [(g, a["groups"][g], r["groups"][g]) for g in r["groups"]]
    for where, ra, rr in rows:
        for name in NC_METRIC_NAMES:
            va, vr = ra[name], rr[name]
            if math.isnan(vr):
                assert math.isnan(va), (where, name, va)
            else:
                assert va == pytest.approx(vr, rel=1e-5, abs=atol), (where, name, va, vr)


@pytest.mark.parametrize("global_mean", ["weighted", "unweighted"])
@pytest.mark.parametrize("group_means", ["own", "global"])
@pytest.mark.parametrize("c", [2, 4])
def test_matches_reference(global_mean, group_means, c):
    h, y, g, w, b = _random_data(c=c)
    a = compute_neural_collapse(h, y, w, b, g, global_mean=global_mean, group_means=group_means)
    r = compute_neural_collapse_reference(h, y, w, b, g, global_mean=global_mean, group_means=group_means)
    _assert_rows_close(a, r)
    assert a["counts"] == r["counts"]
    assert a["overall"]["n"] == 400 and sum(a["groups"][i]["n"] for i in range(2)) == 400


def test_nc1_hand_formula_numpy():
    """NC1 = Tr(Sigma_W pinv(Sigma_B)) / C with numpy's pinv, sample-weighted mu_G, one group."""
    h, y, _, w, b = _random_data(n=200, d=10, c=3, k=1)
    hn, yn = h.double().numpy(), y.numpy()
    mu = np.stack([hn[yn == k].mean(0) for k in range(3)])
    mg = hn.mean(0)
    sw = (hn - mu[yn]).T @ (hn - mu[yn]) / len(hn)
    m = (mu - mg).T
    sb = m @ m.T / 3
    expected = np.trace(sw @ np.linalg.pinv(sb)) / 3
    got = compute_neural_collapse(h, y, w, b)["overall"]["nc1"]
    assert got == pytest.approx(expected, rel=1e-8)
    # the unweighted convention gives a different value under class imbalance
    keep = (y != 2) | (torch.arange(200) % 4 == 0)
    a = compute_neural_collapse(h[keep], y[keep], w, b, global_mean="weighted")["overall"]["nc1"]
    u = compute_neural_collapse(h[keep], y[keep], w, b, global_mean="unweighted")["overall"]["nc1"]
    assert abs(a - u) > 1e-6


def test_streaming_equals_reference_many_batches_and_merge():
    h, y, g, w, b = _random_data(n=600, d=32, c=3, k=3, offset=50.0, seed=1)
    logits = h.double() @ w.double().T + b.double()
    acc = NeuralCollapseAccumulator(num_classes=3, num_groups=3, shift=torch.full((32,), 49.0))
    half = NeuralCollapseAccumulator(num_classes=3, num_groups=3, shift=torch.full((32,), 49.0))
    for i in range(0, 300, 37):  # uneven batches, float32 input
        acc.update(h[i : min(i + 37, 300)], y[i : min(i + 37, 300)], g[i : min(i + 37, 300)])
    for i in range(300, 600, 53):
        half.update(h[i : i + 53], y[i : i + 53], g[i : i + 53])
    acc.merge(half)  # additive states (what a DDP all-reduce does)
    for i in range(0, 600, 100):
        acc.update_nc4(h[i : i + 100], logits[i : i + 100], g[i : i + 100])
    got = acc.compute(w)
    ref = compute_neural_collapse_reference(h, y, w, b, g, num_groups=3)
    _assert_rows_close(got, ref, atol=1e-5)


def test_perfect_etf_collapse():
    c, d, k = 4, 8, 2
    # simplex ETF directions in R^d (rows), equal norms, pairwise cosine -1/(C-1)
    etf = torch.eye(c) - 1.0 / c
    etf = torch.cat([etf, torch.zeros(c, d - c)], 1) * 3.0
    y = torch.arange(c).repeat(10)
    g = torch.arange(2).repeat_interleave(20)
    h = etf[y] + 1e-7 * torch.randn(len(y), d, dtype=torch.float64)
    w, b = etf.clone(), torch.zeros(c)
    res = compute_neural_collapse(h, y, w, b, g, num_groups=k)
    for row in [res["overall"], res["groups"][0], res["groups"][1]]:
        assert row["nc1"] < 1e-10
        assert row["nc2_etf_means"] < 1e-6 and row["nc2_etf_weights"] < 1e-6
        assert row["nc2_equinorm_means"] < 1e-6 and row["nc2_equiangular_means"] < 1e-6
        assert row["nc2_maxangle_means"] < 1e-6
        assert row["nc3_self_duality"] < 1e-10 and row["nc3_etf"] < 1e-6
        assert row["nc4_agreement"] == 1.0 and row["nc4_mismatch"] == 0.0


def test_binary_degenerate_and_single_logit():
    h, y, g, _, _ = _random_data(c=2, d=6)
    w1, b1 = torch.randn(1, 6), torch.randn(1)
    w2, b2 = classifier_from_linear(w1, b1)
    assert torch.equal(w2, torch.cat([-w1, w1]).double() / 2)
    res = compute_neural_collapse(h, y, w1, b1, g)
    assert math.isnan(res["overall"]["nc2_equiangular_means"])  # C = 2: one cosine, documented as undefined
    # maxangle = |cos + 1|, and the 2-row classifier is antipodal: its maxangle is 0
    mu = torch.stack([h[y == k].double().mean(0) for k in range(2)])
    m = mu - h.double().mean(0)
    cos = torch.nn.functional.cosine_similarity(m[0], m[1], dim=0).item()
    assert res["overall"]["nc2_maxangle_means"] == pytest.approx(abs(cos + 1), abs=1e-10)
    assert res["overall"]["nc2_maxangle_weights"] == pytest.approx(0.0, abs=1e-12)
    # C = 2: the NC2 means metrics depend on the class counts only (documented degeneracy)
    n1, n2 = int((y == 0).sum()), int((y == 1).sum())
    assert res["overall"]["nc2_equinorm_means"] == pytest.approx(math.sqrt(2) * abs(n1 - n2) / (n1 + n2), rel=1e-9)
    assert res["overall"]["nc2_maxangle_means"] == pytest.approx(0.0, abs=1e-12)
    unweighted = compute_neural_collapse(h, y, w1, b1, g, global_mean="unweighted")["overall"]
    assert unweighted["nc2_equinorm_means"] == pytest.approx(0.0, abs=1e-9)
    assert unweighted["nc2_etf_means"] == pytest.approx(0.0, abs=1e-7)
    # single-logit predictions: sigmoid(z) > 0.5 <=> argmax of the 2-row classifier
    logit = h.double() @ w1.double().T + b1.double()
    pred = (logit.reshape(-1) > 0).long()
    mu_own = mu
    ncc = torch.cdist(h.double(), mu_own).argmin(1)
    assert res["overall"]["nc4_agreement"] == pytest.approx((pred == ncc).double().mean().item())


def test_class_absent_from_group_nan_with_warning():
    h, y, g, w, b = _random_data(c=3)
    drop = (g == 1) & (y == 2)
    h, y, g = h[~drop], y[~drop], g[~drop]
    with pytest.warns(UserWarning, match="class absent"):
        res = compute_neural_collapse(h, y, w, b, g)
    assert all(math.isnan(res["groups"][1][k]) for k in ("nc1", "nc2_etf_means", "nc3_self_duality", "nc3_etf"))
    assert 0.0 <= res["groups"][1]["nc4_agreement"] <= 1.0  # NC4 stays defined
    assert math.isfinite(res["groups"][0]["nc1"]) and math.isfinite(res["overall"]["nc1"])
    assert res["counts"][1][2] == 0
    ref = compute_neural_collapse_reference(h, y, w, b, g)
    _assert_rows_close(res, ref)


def test_bad_inputs():
    h, y, g, w, b = _random_data()
    acc = NeuralCollapseAccumulator(num_classes=3, num_groups=2)
    bad = h.clone()
    bad[3, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        acc.update(bad, y, g)
    with pytest.raises(ValueError, match="group ids"):
        acc.update(h, y, g + 5)
    with pytest.raises(ValueError, match="labels"):
        acc.update(h, y + 3, g)
    with pytest.raises(ValueError, match="global_mean"):
        compute_neural_collapse(h, y, w, b, g, global_mean="median")
    with pytest.raises(ValueError, match="num_classes"):
        NeuralCollapseAccumulator(num_classes=1)
    acc.update(h, y, g)
    with pytest.raises(ValueError, match="expected"):
        acc.compute(torch.randn(3, 5))


def test_accumulator_states_are_plain_tensors_with_metatensor_inputs(tmp_path):
    """MONAI MetaTensors (eval transforms keep metadata) must not leak into the states: resume checkpoints are loaded
    with ``weights_only=True``, which refuses MetaTensor."""
    from monai.data import MetaTensor

    from monai_fair.methods.neural_collapse import NeuralCollapseAccumulator

    h = MetaTensor(torch.randn(8, 4))
    y = MetaTensor(torch.tensor([0, 1] * 4))
    g = MetaTensor(torch.tensor([0, 0, 1, 1] * 2))
    acc = NeuralCollapseAccumulator(2, 2)
    acc.update(h, y, g)
    acc.update_nc4(h, MetaTensor(torch.randn(8, 2)), g)
    states = [*acc.state_tensors(), *acc.class_means()]
    assert all(type(t) is torch.Tensor for t in states)
    torch.save(states, tmp_path / "s.pt")
    torch.load(tmp_path / "s.pt", weights_only=True)
