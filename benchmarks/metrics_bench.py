# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Timing of the full group classification report against fairlearn's ``MetricFrame``, in one run.

Both compute, per group and overall, accuracy, balanced accuracy, ROC AUC, F1, TPR, FPR and selection rate on the
same data (binary task, ``--n`` samples, ``--groups`` groups, positive-class scores with ties); monai-fair also
computes all its fairness metrics (gaps, worst group, ES-AUC/ES-accuracy, EOpp0/EOpp1/EOdds, DP). No bootstrap.
The per-group values of both are checked to agree before timing is reported.

    python benchmarks/metrics_bench.py --n 1000000 --groups 8 --repeats 7 --fairlearn-repeats 3 --threads 1
    python benchmarks/metrics_bench.py --n 1000000 --groups 8 --repeats 5 --fairlearn-repeats 1 --decimals -1

Needs the ``bench`` extra (fairlearn, pandas).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from functools import partial

import numpy as np
import torch

from monai_fair.metrics import compute_group_classification_metrics


def make_data(n: int, groups: int, seed: int, decimals: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Binary labels, group ids and scores; ``decimals >= 0`` rounds the scores (many ties), ``< 0`` keeps them."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, n)
    y = (rng.random(n) < 0.3 + 0.02 * g).astype(np.int64)
    s = np.clip(rng.normal(0.35 + 0.3 * y - 0.01 * g, 0.2), 0, 1).astype(np.float64)
    return (s.round(decimals) if decimals >= 0 else s), y, g


def fairlearn_frame(s: np.ndarray, y: np.ndarray, g: np.ndarray, threshold: float = 0.5):
    from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score

    def on_labels(fn, y_true, score):
        return fn(y_true, (score >= threshold).astype(np.int64))

    metrics = {
        "accuracy": partial(on_labels, accuracy_score),
        "balanced_accuracy": partial(on_labels, balanced_accuracy_score),
        "auc": roc_auc_score,
        "f1": partial(on_labels, f1_score),
        "tpr": partial(on_labels, true_positive_rate),
        "fpr": partial(on_labels, false_positive_rate),
        "selection_rate": partial(on_labels, selection_rate),
    }
    mf = MetricFrame(metrics=metrics, y_true=y, y_pred=s, sensitive_features=g)
    return mf, mf.difference(), mf.group_min()


def _time(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--groups", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--fairlearn-repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--decimals", type=int, default=4, help="round the scores (ties); -1 keeps full precision")
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: torch default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    s, y, g = make_data(args.n, args.groups, args.seed, args.decimals)

    ours = compute_group_classification_metrics(s, y, g)  # warm-up + values
    mf, _, _ = fairlearn_frame(s, y, g)
    by = mf.by_group
    max_diff = 0.0
    for k in range(args.groups):
        for m in ("accuracy", "balanced_accuracy", "auc", "f1", "tpr", "fpr", "selection_rate"):
            max_diff = max(max_diff, abs(ours["groups"][k][m] - float(by.loc[k, m])))
    assert max_diff < 1e-9, f"monai-fair and fairlearn disagree by {max_diff}"

    t_ours = _time(lambda: compute_group_classification_metrics(s, y, g), args.repeats)
    t_fl = _time(lambda: fairlearn_frame(s, y, g), args.fairlearn_repeats)
    med_o, med_f = statistics.median(t_ours), statistics.median(t_fl)
    result = {
        "n": args.n,
        "groups": args.groups,
        "decimals": args.decimals,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "load_avg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "monai_fair_s": [round(t, 4) for t in t_ours],
        "fairlearn_s": [round(t, 3) for t in t_fl],
        "monai_fair_median_s": round(med_o, 4),
        "fairlearn_median_s": round(med_f, 3),
        "speedup_median": round(med_f / med_o, 1),
        "max_abs_diff_per_group": max_diff,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
