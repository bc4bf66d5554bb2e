# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score, recall_score, roc_auc_score

from monai_fair.metrics import FairnessMetricWarning, GroupClassificationMetric, compute_group_classification_metrics


def _binary_data(n=400, groups=3, seed=0, rounding=1):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    g = rng.integers(0, groups, n)
    s = np.round(np.clip(rng.random(n) * 0.6 + 0.3 * y, 0, 1), rounding)  # rounding -> many ties
    return s, y, g


def _multiclass_data(n=600, c=4, groups=3, seed=1):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    g = rng.integers(0, groups, n)
    p = rng.dirichlet(np.ones(c), n)
    p[np.arange(n), y] += 0.4
    p = np.round(p / p.sum(1, keepdims=True), 2)
    p = p / p.sum(1, keepdims=True)
    return p, y, g


def _rates(y, yh, pos=1):
    tn, fp, fn, tp = confusion_matrix(y == pos, yh == pos, labels=[False, True]).ravel()
    return tp / (tp + fn), fp / (fp + tn), tn / (tn + fp)


def test_binary_against_sklearn_with_ties():
    s, y, g = _binary_data()
    r = compute_group_classification_metrics(s, y, g)
    for k in range(3):
        m = g == k
        yh = (s[m] >= 0.5).astype(int)
        e = r["groups"][k]
        tpr, fpr, tnr = _rates(y[m], yh)
        assert e["n"] == m.sum()
        assert e["auc"] == pytest.approx(roc_auc_score(y[m], s[m]), abs=1e-12)
        assert e["f1"] == pytest.approx(f1_score(y[m], yh), abs=1e-12)
        assert e["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y[m], yh), abs=1e-12)
        assert e["accuracy"] == pytest.approx((yh == y[m]).mean(), abs=1e-12)
        assert (e["tpr"], e["fpr"], e["tnr"]) == pytest.approx((tpr, fpr, tnr), abs=1e-12)
        assert e["selection_rate"] == pytest.approx(yh.mean(), abs=1e-12)
    assert r["overall"]["auc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    # (N, 2) probabilities give the same result
    r2 = compute_group_classification_metrics(np.stack([1 - s, s], 1), y, g)
    assert r2["groups"][1]["auc"] == pytest.approx(r["groups"][1]["auc"])
    assert r2["fairness"]["eodds_mean"] == pytest.approx(r["fairness"]["eodds_mean"])


def test_binary_fairness_definitions():
    s, y, g = _binary_data(groups=3, seed=3)
    r = compute_group_classification_metrics(s, y, g)
    per = r["groups"]
    acc = [per[k]["accuracy"] for k in range(3)]
    auc = [per[k]["auc"] for k in range(3)]
    tpr = [per[k]["tpr"] for k in range(3)]
    fpr = [per[k]["fpr"] for k in range(3)]
    tnr = [per[k]["tnr"] for k in range(3)]
    sel = [per[k]["selection_rate"] for k in range(3)]
    f = r["fairness"]
    assert f["accuracy_gap"] == pytest.approx(max(acc) - min(acc))
    assert f["auc_gap"] == pytest.approx(max(auc) - min(auc))
    assert f["worst_group_auc"] == pytest.approx(min(auc))
    assert f["worst_group_accuracy"] == pytest.approx(min(acc))
    a_all = r["overall"]["auc"]
    assert f["es_auc"] == pytest.approx(a_all / (1 + sum(abs(a_all - a) for a in auc)))
    acc_all = r["overall"]["accuracy"]
    assert f["es_accuracy"] == pytest.approx(acc_all / (1 + sum(abs(acc_all - a) for a in acc)))
    assert f["eopp1"] == pytest.approx(max(tpr) - min(tpr))
    assert f["eopp0"] == pytest.approx(max(tnr) - min(tnr))
    eo = [(t + p) / 2 for t, p in zip(tpr, fpr)]
    assert f["eodds_mean"] == pytest.approx(max(eo) - min(eo))
    assert f["eodds"] == pytest.approx(max(max(tpr) - min(tpr), max(fpr) - min(fpr)))
    assert f["demographic_parity"] == pytest.approx(max(sel) - min(sel))


def test_hand_computed_two_groups_signed():
    # group 0: y=[1,1,0,0], yhat=[1,0,0,0] -> TPR .5, FPR 0 ; group 1: y=[1,0,0,1], yhat=[1,1,0,1] -> TPR 1, FPR .5
    s = [0.9, 0.2, 0.1, 0.3, 0.8, 0.7, 0.4, 0.6]
    y = [1, 1, 0, 0, 1, 0, 0, 1]
    g = [0, 0, 0, 0, 1, 1, 1, 1]
    r = compute_group_classification_metrics(s, y, g, fairness_form="signed")
    f = r["fairness"]
    assert f["eopp1"] == pytest.approx(0.5 - 1.0)
    assert f["eopp0"] == pytest.approx(1.0 - 0.5)
    assert f["eodds_mean"] == pytest.approx(0.5 * ((0.5 - 1.0) + (0.0 - 0.5)))
    assert f["demographic_parity"] == pytest.approx(abs(0.25 - 0.75))
    assert r["groups"][0]["auc"] == pytest.approx(0.75)  # pos {0.9,0.2} vs neg {0.1,0.3}: 3 of 4 pairs
    assert r["groups"][1]["auc"] == pytest.approx(0.75)  # pos {0.8,0.6} vs neg {0.7,0.4}: 3 of 4
    rr = compute_group_classification_metrics(s, y, g)  # range form = |signed| for two groups
    assert rr["fairness"]["eodds_mean"] == pytest.approx(0.5)
    assert rr["fairness"]["eopp1"] == pytest.approx(0.5)


def test_multiclass_against_sklearn_and_scp():
    p, y, g = _multiclass_data()
    c = p.shape[1]
    r = compute_group_classification_metrics(p, y, g)
    tpr_gc, fpr_gc, tnr_gc, rate_gc = (np.zeros((3, c)) for _ in range(4))
    for k in range(3):
        m = g == k
        yh = p[m].argmax(1)
        e = r["groups"][k]
        assert e["auc"] == pytest.approx(roc_auc_score(y[m], p[m], multi_class="ovr"), abs=1e-12)
        assert e["f1"] == pytest.approx(f1_score(y[m], yh, average="macro"), abs=1e-12)
        assert e["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y[m], yh), abs=1e-12)
        assert e["tpr"] == pytest.approx(recall_score(y[m], yh, average="macro", labels=np.unique(y[m])), abs=1e-12)
        for cl in range(c):
            tpr_gc[k, cl], fpr_gc[k, cl], tnr_gc[k, cl] = _rates(y[m], yh, cl)
            rate_gc[k, cl] = (yh == cl).mean()
        assert e["fpr"] == pytest.approx(fpr_gc[k].mean())
    assert r["overall"]["auc"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr"), abs=1e-12)
    f = r["fairness"]
    rng = lambda a: a.max(0) - a.min(0)  # noqa: E731
    assert f["eopp1"] == pytest.approx(rng(tpr_gc).mean())
    assert f["eopp0"] == pytest.approx(rng(tnr_gc).mean())
    assert f["eodds_mean"] == pytest.approx(rng((tpr_gc + fpr_gc) / 2).mean())
    assert f["demographic_parity"] == pytest.approx(rng(rate_gc).sum())


def test_undefined_cases_warn_and_nan():
    s = [0.1, 0.9, 0.2, float("nan"), 0.3, 0.6]
    y = [0, 1, 0, 1, 1, 1]
    g = [0, 0, 1, 1, 2, 2]
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        r = compute_group_classification_metrics(s, y, g, num_groups=4, group_names=["a", "b", "c", "d"])
    msgs = " ".join(str(x.message) for x in w if issubclass(x.category, FairnessMetricWarning))
    assert "group 1 ('b')" in msgs and "NaN" in msgs
    assert "group 3 ('d') is empty" in msgs
    assert "group 2 ('c') has a single class" in msgs
    assert math.isnan(r["groups"][1]["auc"]) and math.isnan(r["groups"][1]["accuracy"])
    assert math.isnan(r["groups"][3]["accuracy"]) and r["groups"][3]["n"] == 0
    assert math.isnan(r["groups"][2]["auc"]) and math.isnan(r["groups"][2]["fpr"])
    assert r["groups"][2]["tpr"] == pytest.approx(0.5)
    assert math.isnan(r["overall"]["auc"])
    assert r["groups"][0]["auc"] == 1.0
    # omit policy drops the NaN sample
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r2 = compute_group_classification_metrics(s, y, g, nan_policy="omit")
    assert r2["groups"][1]["n"] == 1 and r2["overall"]["n"] == 5 and not math.isnan(r2["overall"]["auc"])


def test_bad_input_errors():
    with pytest.raises(ValueError, match="group"):
        compute_group_classification_metrics([0.1, 0.2], [0, 1], [0, 5], num_groups=2)
    with pytest.raises(ValueError, match="y_score"):
        compute_group_classification_metrics([0.1, 0.2, 0.3], [0, 1], [0, 1])
    with pytest.raises(ValueError, match="fairness_form"):
        compute_group_classification_metrics([0.1, 0.2], [0, 1], [0, 1], fairness_form="x")


def test_bootstrap_ci_seeded_and_contains_estimate():
    s, y, g = _binary_data(n=300, seed=5, rounding=3)
    r1 = compute_group_classification_metrics(s, y, g, n_bootstrap=100, seed=7)
    r2 = compute_group_classification_metrics(s, y, g, n_bootstrap=100, seed=7)
    assert r1["groups"][0]["ci"] == r2["groups"][0]["ci"]
    assert r1["fairness_ci"]["auc_gap"] == r2["fairness_ci"]["auc_gap"]
    for k in range(3):
        lo, hi = r1["groups"][k]["ci"]["auc"]
        assert lo <= r1["groups"][k]["auc"] <= hi and hi - lo < 0.5
    # the vectorised weighted bootstrap equals an explicit resample of replicate 0
    from monai_fair.metrics.resampling import bootstrap_weights

    w = next(bootstrap_weights(len(y), 1, seed=3))[0].numpy().astype(int)
    idx = np.repeat(np.arange(len(y)), w)
    from monai_fair.metrics import GroupAUC

    yt, gt = torch.as_tensor(y), torch.as_tensor(g)
    auc_fn = GroupAUC(torch.as_tensor(s)[:, None], (yt == 1)[:, None], gt, 3)
    auc_g, _ = auc_fn(torch.as_tensor(w, dtype=torch.float64)[None])
    m = g[idx] == 1
    assert float(auc_g[0, 1, 0]) == pytest.approx(roc_auc_score(y[idx][m], s[idx][m]), abs=1e-12)


def test_metric_class_batches_equal_functional():
    p, y, g = _multiclass_data(n=90, c=3, groups=3, seed=2)
    metric = GroupClassificationMetric(num_groups=3)
    pt, yt, gt = torch.as_tensor(p), torch.as_tensor(y), torch.as_tensor(g)
    metric(pt[:30], yt[:30], group=gt[:30])
    metric([v for v in pt[30:60]], [v.reshape(1) for v in yt[30:60]], group=[v for v in gt[30:60]])  # decollated
    onehot = torch.nn.functional.one_hot(yt[60:], 3)
    metric(pt[60:], onehot, group=gt[60:])
    got = metric.aggregate()
    ref = compute_group_classification_metrics(p, y, g, num_groups=3)
    assert got["fairness"] == pytest.approx(ref["fairness"], nan_ok=True)
    assert got["groups"][2] == pytest.approx(ref["groups"][2], nan_ok=True)
    scalar = GroupClassificationMetric(reduction="worst_group_auc")
    scalar(pt, yt, group=gt)
    assert float(scalar.aggregate()) == pytest.approx(ref["fairness"]["worst_group_auc"])
    with pytest.raises(ValueError, match="reduction"):
        GroupClassificationMetric(reduction="nope")


def test_empty_input_and_labels_only():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = compute_group_classification_metrics(torch.zeros(0), torch.zeros(0, dtype=torch.long), torch.zeros(0), 2)
    assert r["overall"]["n"] == 0 and math.isnan(r["overall"]["accuracy"]) and math.isnan(r["fairness"]["auc_gap"])
    y, yp, g = [0, 1, 2, 1, 0, 2], [0, 1, 1, 1, 2, 2], [0, 0, 1, 1, 0, 1]
    r = compute_group_classification_metrics(None, y, g, y_pred=yp, num_classes=3)
    m = np.array(g) == 1
    yy, pp = np.array(y)[m], np.array(yp)[m]
    assert r["groups"][1]["f1"] == pytest.approx(f1_score(yy, pp, average="macro"))
    assert r["groups"][1]["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(yy, pp))
    assert math.isnan(r["groups"][1]["auc"])


def test_stratified_bootstrap_keeps_group_sizes_and_resamples_within_groups():
    from monai_fair.metrics.resampling import bootstrap_weights

    g = torch.tensor([2, 0, 1, 1, 0, 2, 2, 1, 0, 2, 1, 1])
    sizes = torch.bincount(g)
    chunks = list(bootstrap_weights(len(g), 50, seed=4, max_elements=120, strata=g))  # several chunks
    w = torch.cat(chunks)
    assert w.shape == (50, len(g))
    onehot = torch.nn.functional.one_hot(g).double()
    assert torch.equal(w @ onehot, sizes.double().expand(50, -1))  # every replicate keeps every group's size
    assert (w.std(0) > 0).all()  # every sample is sometimes drawn more or less than once
    again = torch.cat(list(bootstrap_weights(len(g), 50, seed=4, max_elements=120, strata=g)))
    assert torch.equal(w, again)
    # a singleton group is always drawn exactly once
    g1 = torch.tensor([0, 0, 0, 1])
    w1 = torch.cat(list(bootstrap_weights(4, 20, seed=0, strata=g1)))
    assert torch.equal(w1[:, 3], torch.ones(20, dtype=torch.float64))
    with pytest.raises(ValueError, match="strata has 3 entries"):
        next(bootstrap_weights(4, 2, seed=0, strata=g1[:3]))


def test_stratified_bootstrap_metrics():
    s, y, g = _binary_data(n=300, seed=5, rounding=3)
    strat = compute_group_classification_metrics(s, y, g, n_bootstrap=100, seed=7, stratified_bootstrap=True)
    joint = compute_group_classification_metrics(s, y, g, n_bootstrap=100, seed=7)
    assert strat["groups"][0]["auc"] == joint["groups"][0]["auc"]  # point estimates do not depend on it
    assert strat["groups"][0]["ci"] != joint["groups"][0]["ci"]
    for k in range(3):
        lo, hi = strat["groups"][k]["ci"]["auc"]
        assert lo <= strat["groups"][k]["auc"] <= hi


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_delong_intervals_at_tiny_n(dtype):
    """Three samples, one in a group: no AUC has a DeLong variance; the bootstrap still runs (no dtype error) and
    the AUC intervals are NaN rather than made up."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FairnessMetricWarning)
        r = compute_group_classification_metrics(
            np.array([0.2, 0.7, 0.9], dtype=dtype), [0, 1, 1], [0, 0, 1], n_bootstrap=20, auc_ci="delong"
        )
    assert r["overall"]["auc"] == pytest.approx(1.0)
    assert r["ci_method"]["auc"] == "DeLong"
    assert all(math.isnan(v) for v in r["overall"]["ci"]["auc"])
    assert r["overall"]["ci"]["accuracy"][0] <= r["overall"]["accuracy"] <= r["overall"]["ci"]["accuracy"][1]
