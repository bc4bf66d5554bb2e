# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Timing of the group classification report with intervals against fairlearn's ``MetricFrame(n_boot=...)``, in one
run, on the same data.

Workload (binary task, positive-class scores with ties, ``--groups`` groups):

* monai-fair, ``--n`` samples, ``--boot`` replicates: ``compute_group_classification_metrics(n_bootstrap=B)`` (per
  group and overall accuracy, balanced accuracy, AUC, F1, TPR, FPR, TNR, selection rate; gaps, worst group, ES,
  EOpp/EOdds/DP; DeLong AUC intervals and pairwise differences; bootstrap intervals and homogeneity tests of
  everything else), ``compute_group_calibration(n_bootstrap=B)`` (ECE/Brier by group, reliability data), the
  DeLong intervals alone (``delong_group_auc``), and the exact AUC bootstrap (``auc_ci="bootstrap"``, AUC recomputed
  on every resample, ``--exact-boot`` replicates) for its per-replicate cost;
* fairlearn ``MetricFrame`` with ``n_boot`` on ``--fairlearn-n`` samples (it resamples the whole frame per replicate,
  so 10^6 x 1,000 is out of reach; its per-replicate cost is reported), the same seven metrics incl. ROC AUC;
* monai-fair on fairlearn's workload too, for a like-for-like ratio.

Per-group values of both are checked to agree before any timing is reported. Wall and CPU (process) time are both
recorded: on a shared machine the wall time includes waiting for a core.

    python benchmarks/metrics_bench.py --n 1000000 --groups 8 --boot 1000 --fairlearn-n 100000 --fairlearn-boot 20

``--population`` times the population-scale path instead, side by side with pandas' own read of the same file:
``python -m monai_fair report`` (a fresh process: imports, CSV reader, statistics with ``--boot`` replicates,
report files, no plots) on a ``--n``-row predictions CSV with ``--groups`` groups, ``pandas.read_csv`` of that
file, the report's CSV reader alone, and the cluster bootstrap (``--patients`` patients) of
``compute_group_classification_metrics``:

    python benchmarks/metrics_bench.py --population --n 1000000 --groups 8 --patients 250000 --boot 1000

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

from monai_fair.metrics import compute_group_calibration, compute_group_classification_metrics, delong_group_auc

_METRICS = ("accuracy", "balanced_accuracy", "auc", "f1", "tpr", "fpr", "selection_rate")


def make_data(n: int, groups: int, seed: int, decimals: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Binary labels, group ids and scores; ``decimals >= 0`` rounds the scores (many ties), ``< 0`` keeps them."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, n)
    y = (rng.random(n) < 0.3 + 0.02 * g).astype(np.int64)
    s = np.clip(rng.normal(0.35 + 0.3 * y - 0.01 * g, 0.2), 0, 1).astype(np.float64)
    return (s.round(decimals) if decimals >= 0 else s), y, g


def fairlearn_frame(s: np.ndarray, y: np.ndarray, g: np.ndarray, n_boot: int | None, threshold: float = 0.5):
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
    kw = {"n_boot": n_boot, "ci_quantiles": [0.025, 0.975], "random_state": 0} if n_boot else {}
    mf = MetricFrame(metrics=metrics, y_true=y, y_pred=s, sensitive_features=g, **kw)
    return mf, mf.difference(), mf.group_min()


def _time(fn, repeats: int) -> tuple[list[float], list[float]]:
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(round(time.perf_counter() - t0, 4))
        cpu.append(round(time.process_time() - c0, 4))
    return wall, cpu


def _summary(wall: list[float], cpu: list[float]) -> dict:
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "wall_median_s": statistics.median(wall),
        "cpu_median_s": statistics.median(cpu),
    }


def population(args: argparse.Namespace) -> dict:
    """Timings of the report CLI on a large predictions CSV, pandas' read of it and the cluster bootstrap."""
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    import pandas as pd

    from monai_fair.report.predictions import read_prediction_table

    s, y, g = make_data(args.n, args.groups, args.seed, args.decimals)
    per_group = max(args.patients // args.groups, 1)  # every patient in one group, ~n / patients cases each
    patients = np.random.default_rng(args.seed + 7).integers(0, per_group, args.n) * args.groups + g
    out: dict = {"n": args.n, "groups": args.groups, "patients": int(np.unique(patients).size), "boot": args.boot}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "predictions.csv"
        pd.DataFrame(
            {
                "case_id": [f"c{i}" for i in range(args.n)],
                "prob_neg": np.round(1 - s, 4),
                "prob_pos": s,
                "pred": (s >= 0.5).astype(np.int64),
                "label": y,
                "group": np.char.add("g", g.astype(str)),
                "patient_id": np.char.add("p", patients.astype(str)),
            }
        ).to_csv(path, index=False)
        out["csv_mb"] = round(path.stat().st_size / 2**20, 1)
        out["pandas_read_csv"] = _summary(*_time(lambda: pd.read_csv(path), args.repeats))
        out["report_reader"] = _summary(*_time(lambda: read_prediction_table(path), args.repeats))
        cmd = [sys.executable, "-m", "monai_fair", "report", str(path), "--out", str(Path(tmp) / "report")]
        cmd += ["--no-plots", "--n-bootstrap", str(args.boot)]
        for name, extra in (("report_cli_iid", ["--cluster-col", "none"]), ("report_cli_cluster", [])):
            walls = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                subprocess.run(cmd + extra, check=True, capture_output=True)
                walls.append(round(time.perf_counter() - t0, 3))
            out[name] = {"wall_median_s": statistics.median(walls), "wall_s": walls}
    out["cluster_bootstrap"] = _summary(
        *_time(
            lambda: compute_group_classification_metrics(s, y, g, n_bootstrap=args.boot, cluster=patients),
            args.repeats,
        )
    )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--population", action="store_true", help="time the report CLI, pandas and the cluster bootstrap")
    p.add_argument("--patients", type=int, default=250_000, help="patients of the cluster bootstrap (--population)")
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--groups", type=int, default=8)
    p.add_argument("--boot", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--exact-boot", type=int, default=20, help="replicates of the O(B N) exact AUC bootstrap run")
    p.add_argument("--fairlearn-n", type=int, default=100_000)
    p.add_argument("--fairlearn-boot", type=int, default=20)
    p.add_argument("--fairlearn-repeats", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--decimals", type=int, default=4, help="round the scores (ties); -1 keeps full precision")
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: torch default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.population:
        env = {"torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}
        env["load_avg_1min"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        print(json.dumps({**population(args), **env}, indent=2))
        return
    s, y, g = make_data(args.n, args.groups, args.seed, args.decimals)
    fs, fy, fg = make_data(args.fairlearn_n, args.groups, args.seed + 1, args.decimals)

    ours = compute_group_classification_metrics(fs, fy, fg)  # warm-up + agreement check
    by = fairlearn_frame(fs, fy, fg, None)[0].by_group
    max_diff = max(abs(ours["groups"][k][m] - float(by.loc[k, m])) for k in range(args.groups) for m in _METRICS)
    assert max_diff < 1e-9, f"monai-fair and fairlearn disagree by {max_diff}"

    runs = {
        "monai_fair_report_ci": lambda: compute_group_classification_metrics(s, y, g, n_bootstrap=args.boot),
        "monai_fair_calibration_ci": lambda: compute_group_calibration(s, y, g, n_bootstrap=args.boot),
        "monai_fair_delong_only": lambda: delong_group_auc(s, y, g),
        "monai_fair_report_exact_auc_bootstrap": lambda: compute_group_classification_metrics(
            s, y, g, n_bootstrap=args.exact_boot, auc_ci="bootstrap"
        ),
        "monai_fair_report_ci_fairlearn_workload": lambda: compute_group_classification_metrics(
            fs, fy, fg, n_bootstrap=args.fairlearn_boot
        ),
        "fairlearn_metricframe_n_boot": lambda: fairlearn_frame(fs, fy, fg, args.fairlearn_boot),
    }
    timings = {}
    for name, fn in runs.items():
        reps = args.fairlearn_repeats if name.startswith("fairlearn") else args.repeats
        timings[name] = _summary(*_time(fn, reps))
    fl = timings["fairlearn_metricframe_n_boot"]["wall_median_s"]
    like = timings["monai_fair_report_ci_fairlearn_workload"]["wall_median_s"]
    result = {
        "n": args.n,
        "groups": args.groups,
        "boot": args.boot,
        "fairlearn_n": args.fairlearn_n,
        "fairlearn_boot": args.fairlearn_boot,
        "decimals": args.decimals,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "load_avg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "timings": timings,
        "fairlearn_s_per_replicate": round(fl / args.fairlearn_boot, 3),
        "exact_auc_bootstrap_cpu_s_per_replicate": round(
            timings["monai_fair_report_exact_auc_bootstrap"]["cpu_median_s"] / args.exact_boot, 4
        ),
        "speedup_like_for_like_wall": round(fl / like, 1),
        "max_abs_diff_per_group": max_diff,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
