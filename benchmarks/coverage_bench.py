# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Coverage of every interval method of monai-fair by simulation: data with a known truth, the 95 % interval computed
``--reps`` times, the fraction of intervals that contain the truth (nominal 95 %; the target is 93-97 %).

Scenarios (binary classification with binormal scores, per-image Dice from Beta distributions, two groups with
different performance):

* ``iid``: independent images: iid / stratified bootstrap, DeLong (group AUC, overall AUC, AUC difference between
  groups), parametric draws for ``auc_gap``, bootstrap ``accuracy_gap``, ECE and Brier;
* ``clustered``: 1-6 images per patient with a patient effect on the score and on the label: the same methods
  iid (expected to under-cover) and with ``cluster=patient`` (cluster bootstrap, cluster-robust DeLong);
* ``paired``: two correlated models on the same cases: paired DeLong (AUC difference), paired bootstrap (accuracy
  difference, worst-group accuracy difference), iid and clustered;
* ``segmentation``: per-image Dice, iid and clustered: bootstrap intervals of the group mean and the Dice gap.

Also the *size* of the homogeneity tests behind the "disparity" verdict (``--null-reps`` data sets with three
groups of equal performance: how often the test rejects at 5 %).

The truth of every figure is its population value, computed once with the same functions on ``--truth-n`` samples
(its own error is ~1e-4, far below the interval widths).

    python benchmarks/coverage_bench.py --reps 1000 --boot 500 --n 1000 --out docs/benchmarks/coverage.json

``--scenario seeds``: the seed-aware method comparison (:mod:`monai_fair.metrics.seeds`). Two arms, 3, 5 and 10
training seeds each, every model scored on the same ``--n`` cases; a model's per-case score is
``0.75 + delta (other arm) + b (its seed effect) + 0.10 c_i (case difficulty, shared) + 0.08 e_mi (its own case
noise)`` and the figure is the mean over cases (like mean Dice), so the true method effect is ``delta``. Seed
effects ``b ~ N(0, sd^2)``; with ``paired`` seeds half of the seed variance is shared by seed ``i`` of both arms.
Vectorised over the ``--reps`` data sets (each one a "figure" of the estimator). Reported: coverage of the
seed-aware interval (truth ``delta``), its type-I error at ``delta = 0`` (p < 0.05), and the type-I error of the
conditional (case-only, paired percentile bootstrap + Wald) interval on the same data. ``--e2e-reps`` data sets
also go through :func:`monai_fair.metrics.compare_models` end to end (binary classification, seed-varying model
quality, no method effect): the type-I error of its verdicts, seed-aware vs conditional.

    python benchmarks/coverage_bench.py --scenario seeds --reps 1500 --boot 200 --n 300 --e2e-reps 100 \
        --seed 3 --out docs/benchmarks/coverage_seeds.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
import warnings

import numpy as np
import torch

from monai_fair.metrics import (
    compare_models,
    compute_group_calibration,
    compute_group_classification_metrics,
    compute_group_segmentation_metrics,
)


def _patients(rng, n, clustered):
    """Patient id, group (a patient attribute) and patient effect of ``n`` images (1-6 images per patient)."""
    if not clustered:
        pid = np.arange(n)
    else:
        sizes = rng.integers(1, 7, n)  # more patients than needed, then cut to n images
        pid = np.repeat(np.arange(n), sizes)[:n]
    u = pid.max() + 1
    return pid, rng.integers(0, 2, u)[pid], rng.normal(0, 1, u)[pid]


def cls_data(rng, n, clustered, second_model=False):
    """Binary labels, group, scores (sigmoid of binormal), patient ids; a correlated second model if asked."""
    pid, g, eff = _patients(rng, n, clustered)
    y = (rng.random(n) < 1 / (1 + np.exp(-(-0.4 + (1.2 * eff if clustered else 0))))).astype(np.int64)
    sep = np.where(g == 0, 1.4, 0.9)
    noise = rng.normal(0, 1, n)
    z = y * sep + noise + (0.8 * eff if clustered else 0) - 0.5
    s = 1 / (1 + np.exp(-z))
    if not second_model:
        return y, g, s, pid
    z2 = y * (sep + 0.25) + 0.7 * noise + 0.71 * rng.normal(0, 1, n) + (0.8 * eff if clustered else 0) - 0.5
    return y, g, s, pid, 1 / (1 + np.exp(-z2))


def seg_data(rng, n, clustered):
    pid, g, eff = _patients(rng, n, clustered)
    a = np.where(g == 0, 8.0, 5.0) * np.exp(0.5 * eff if clustered else 0)
    return rng.beta(a, 2.0), g, pid


def _iv(lo_hi, truth, name):
    return name, float(lo_hi[0]), float(lo_hi[1]), float(truth)


def cls_intervals(rng, n, boot, clustered, truth):
    y, g, s, pid = cls_data(rng, n, clustered)
    out = []
    schemes = [("iid", {}), ("stratified", {"stratified_bootstrap": True})]
    if clustered:
        schemes.append(("cluster", {"cluster": pid}))
    for name, kw in schemes:
        r = compute_group_classification_metrics(s, y, g, n_bootstrap=boot, seed=int(rng.integers(1 << 30)), **kw)
        tag = "DeLong" + (" cluster-robust" if name == "cluster" else "") if name != "stratified" else None
        out.append(_iv(r["groups"][1]["ci"]["accuracy"], truth["acc1"], f"accuracy group, {name} bootstrap"))
        out.append(_iv(r["fairness_ci"]["accuracy_gap"], truth["acc_gap"], f"accuracy_gap, {name} bootstrap"))
        if tag:
            out.append(_iv(r["groups"][1]["ci"]["auc"], truth["auc1"], f"AUC group, {tag}"))
            out.append(_iv(r["overall"]["ci"]["auc"], truth["auc"], f"AUC overall, {tag}"))
            d = r["auc_differences"][0]
            out.append(_iv(d["ci"], truth["auc0"] - truth["auc1"], f"AUC difference between groups, {tag}"))
            out.append(_iv(r["fairness_ci"]["auc_gap"], truth["auc_gap"], f"auc_gap, parametric draws ({tag})"))
        if name != "stratified":
            cal = compute_group_calibration(s, y, g, n_bootstrap=boot, seed=int(rng.integers(1 << 30)), **kw)
            out.append(_iv(cal["groups"][1]["ci"]["brier"], truth["brier1"], f"Brier group, {name} bootstrap"))
            out.append(_iv(cal["groups"][1]["ci"]["ece"], truth["ece1"], f"ECE group, {name} bootstrap"))
    return out


def paired_intervals(rng, n, boot, clustered, truth):
    y, g, s, pid, s2 = cls_data(rng, n, clustered, second_model=True)
    out = []
    for name, kw in [("iid", {})] + ([("cluster", {"cluster": pid})] if clustered else []):
        r = compare_models(y, g, s, s2, n_bootstrap=boot, min_group_size=1, seed=int(rng.integers(1 << 30)), **kw)
        fig = {(f["figure"], f["scope"], f["group"]): f for f in r["figures"]}
        tag = "paired DeLong" + (" cluster-robust" if name == "cluster" else "")
        out.append(_iv(fig[("auc", "overall", None)]["ci"], truth["d_auc"], f"AUC difference, {tag}"))
        out.append(_iv(fig[("auc", "group", 1)]["ci"], truth["d_auc1"], f"group AUC difference, {tag}"))
        b = f"paired {name} bootstrap"
        out.append(_iv(fig[("accuracy", "overall", None)]["ci"], truth["d_acc"], f"accuracy difference, {b}"))
        wg = fig[("worst_group_accuracy", "fairness", None)]["ci"]
        out.append(_iv(wg, truth["d_wg"], f"worst-group accuracy difference, {b}"))
    return out


def seg_intervals(rng, n, boot, clustered, truth):
    d, g, pid = seg_data(rng, n, clustered)
    out = []
    for name, kw in [("iid", {})] + ([("cluster", {"cluster": pid})] if clustered else []):
        r = compute_group_segmentation_metrics(d, d, g, n_bootstrap=boot, seed=int(rng.integers(1 << 30)), **kw)
        out.append(_iv(r["groups"][1]["ci"]["dice"], truth["dice1"], f"mean Dice group, {name} bootstrap"))
        out.append(_iv(r["fairness_ci"]["dice_gap"], truth["dice_gap"], f"dice_gap, {name} bootstrap"))
    return out


def null_rejection(reps: int, n: int, boot: int, seed: int, alpha: float = 0.05) -> dict:
    """Size of the homogeneity tests behind the "disparity" verdict: three groups with *equal* performance; the
    fraction of data sets where the test rejects at ``alpha`` should be about ``alpha``."""
    rng = np.random.default_rng(seed)
    names = ("accuracy_gap", "tpr_gap", "auc_gap", "eodds", "demographic_parity")
    rej = {k: 0 for k in names}
    for r in range(reps):
        y = rng.integers(0, 2, n)
        g = rng.integers(0, 3, n)
        s = 1 / (1 + np.exp(-(1.2 * y + rng.normal(0, 1, n) - 0.6)))
        p = compute_group_classification_metrics(s, y, g, n_bootstrap=boot, seed=r)["fairness_p_value"]
        for k in names:
            rej[k] += p[k] < alpha
    return {k: round(v / reps, 4) for k, v in rej.items()}


def truths(n_big: int, clustered: bool, seed: int) -> dict:
    """Population values from one very large sample, with the same functions."""
    rng = np.random.default_rng(seed)
    y, g, s, pid, s2 = cls_data(rng, n_big, clustered, second_model=True)
    a = compute_group_classification_metrics(s, y, g)
    b = compute_group_classification_metrics(s2, y, g)
    cal = compute_group_calibration(s, y, g)
    d, gs, _ = seg_data(rng, n_big, clustered)
    sg = compute_group_segmentation_metrics(d, d, gs)
    return {
        "acc1": a["groups"][1]["accuracy"], "acc_gap": a["fairness"]["accuracy_gap"],
        "auc0": a["groups"][0]["auc"], "auc1": a["groups"][1]["auc"], "auc": a["overall"]["auc"],
        "auc_gap": a["fairness"]["auc_gap"], "brier1": cal["groups"][1]["brier"], "ece1": cal["groups"][1]["ece"],
        "d_auc": b["overall"]["auc"] - a["overall"]["auc"], "d_auc1": b["groups"][1]["auc"] - a["groups"][1]["auc"],
        "d_acc": b["overall"]["accuracy"] - a["overall"]["accuracy"],
        "d_wg": b["fairness"]["worst_group_accuracy"] - a["fairness"]["worst_group_accuracy"],
        "dice1": sg["groups"][1]["dice"], "dice_gap": sg["fairness"]["dice_gap"],
    }  # fmt: skip


def _seed_models(rng, reps, n, s, delta, sd, pairing):
    """Per-case scores ``(R, 2S, N)`` of two arms (base seeds first), see the module docstring."""
    case = 0.10 * rng.standard_normal((reps, 1, n))
    if pairing == "paired":
        shared = math.sqrt(0.5) * sd * rng.standard_normal((reps, 1, s))
        b = np.concatenate([shared, shared], -1) + math.sqrt(0.5) * sd * rng.standard_normal((reps, 1, 2 * s))
    else:
        b = sd * rng.standard_normal((reps, 1, 2 * s))
    arm = np.r_[np.zeros(s), np.full(s, delta)][None, :, None]
    return 0.75 + arm + b.transpose(0, 2, 1) + case + 0.08 * rng.standard_normal((reps, 2 * s, n))


def seed_coverage(reps, n, boot, s, delta, sd, pairing, seed, chunk=250):
    """Coverage / type-I error of the seed-aware interval and type-I error of the conditional one (vectorised)."""
    from monai_fair.metrics.seeds import seed_aware_difference

    rng = np.random.default_rng(seed)
    hits, rej, rej_cond, widths = [], [], [], []
    for start in range(0, reps, chunk):
        r = min(chunk, reps - start)
        x = torch.as_tensor(_seed_models(rng, r, n, s, delta, sd, pairing))  # (R, M, N)
        w = torch.as_tensor(rng.multinomial(n, np.full(n, 1.0 / n), size=boot), dtype=torch.float64) / n  # (B, N)
        point = x.mean(-1).T  # (M, R)
        bs = torch.einsum("rmn,bn->bmr", x, w)  # (B, M, R): the same resampled cases for every model
        res = seed_aware_difference(point, bs, s, pairing=pairing)
        hits.append(((res["lo"] <= delta) & (delta <= res["hi"])).numpy())
        rej.append((res["p_value"] < 0.05).numpy())
        widths.append((res["hi"] - res["lo"]).numpy())
        dr = bs[:, s:].mean(1) - bs[:, :s].mean(1)  # conditional: case resampling only
        d0 = point[s:].mean(0) - point[:s].mean(0)
        z = (d0 - delta) / dr.std(0)
        rej_cond.append((torch.erfc(z.abs() / math.sqrt(2)) < 0.05).numpy())
    cat = lambda v: np.concatenate(v).astype(float)  # noqa: E731
    cov, t1, tc = cat(hits).mean(), cat(rej).mean(), cat(rej_cond).mean()
    return {
        "seeds": s, "pairing": pairing, "seed_sd": sd, "delta": delta, "reps": reps,
        "coverage": round(float(cov), 4), "mc_se": round(math.sqrt(cov * (1 - cov) / reps), 4),
        "seed_aware_rejects_0": round(float(t1), 4), "conditional_rejection_of_truth": round(float(tc), 4),
        "mean_width": round(float(cat(widths).mean()), 4),
    }  # fmt: skip


def seed_e2e(reps, n, boot, s, seed, seed_sd=0.6):
    """Type-I error of compare_models' verdicts (seed-aware vs conditional) with per-seed classifiers, no effect."""
    rng = np.random.default_rng(seed)
    out = {"auc": [0, 0], "worst_group_auc": [0, 0], "any verdict": [0, 0]}
    for r in range(reps):
        y, g = rng.integers(0, 2, n), rng.integers(0, 2, n)
        latent = rng.standard_normal(n)

        def model(y=y, latent=latent):
            sep = 1.2 + seed_sd * rng.standard_normal()
            return 1 / (1 + np.exp(-(0.5 * sep * (2 * y - 1) + 0.7 * latent + 0.5 * rng.standard_normal(n))))

        base, other = [model() for _ in range(s)], [model() for _ in range(s)]
        res = compare_models(y, g, base, other, group_names=["a", "b"], n_bootstrap=boot, seed=r)
        for f in res["figures"]:
            if f["scope"] != "group" and f["figure"] in ("auc", "worst_group_auc"):
                out[f["figure"]][0] += (f["p_value"] or 1) < 0.05
                out[f["figure"]][1] += (f["conditional"]["p_value"] or 1) < 0.05
        out["any verdict"][0] += any(f["verdict"] != "no evidence" for f in res["figures"])
        cond = [f["conditional"]["p_value"] for f in res["figures"]]
        out["any verdict"][1] += bool(np.nanmin(np.array(cond, dtype=float)) < 0.05 / len(cond))
    return {k: {"seed_aware": round(a / reps, 4), "conditional": round(c / reps, 4)} for k, (a, c) in out.items()} | {
        "reps": reps,
        "n": n,
        "seeds": s,
        "seed_sd_of_separation": seed_sd,
    }


def seeds_main(args) -> dict:
    """``--scenario seeds``: the table of docs/benchmarks/coverage.md, section "Seed-aware method comparison"."""
    rows = []
    for i, (s, pairing, sd, delta) in enumerate(
        [(s, p, sd, d) for s in (3, 5, 10) for p in ("independent", "paired") for sd, d in ((0.02, 0.0), (0.02, 0.01))]
        + [(s, "independent", sd, 0.0) for s in (3, 5, 10) for sd in (0.0, 0.05)]
    ):
        rows.append(seed_coverage(args.reps, args.n, args.boot, s, delta, sd, pairing, args.seed + i))
        print(rows[-1], flush=True)
    e2e = seed_e2e(args.e2e_reps, args.n, args.boot, 5, args.seed + 99) if args.e2e_reps else None
    return {"scenario": "seeds", "n": args.n, "boot": args.boot, "seed": args.seed, "rows": rows, "e2e": e2e}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=1000)
    p.add_argument("--boot", type=int, default=500)
    p.add_argument("--n", type=int, default=1000, help="images per simulated data set")
    p.add_argument("--truth-n", type=int, default=4_000_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the JSON here too")
    p.add_argument("--null-reps", type=int, default=300, help="data sets for the size of the homogeneity tests")
    p.add_argument("--skip-coverage", action="store_true", help="only the size of the homogeneity tests")
    p.add_argument("--scenario", choices=["intervals", "seeds"], default="intervals")
    p.add_argument("--e2e-reps", type=int, default=100, help="seeds scenario: data sets through compare_models")
    args = p.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    if args.scenario == "seeds":
        result = {**seeds_main(args), "wall_s": round(time.perf_counter() - t0, 1), "cpu_count": os.cpu_count()}
        print(json.dumps(result, indent=2))
        if args.out:
            with open(args.out, "w") as f:
                f.write(json.dumps(result, indent=2) + "\n")
        return
    rows: dict[str, list] = {}
    for clustered in (False, True) if not args.skip_coverage else ():
        truth = truths(args.truth_n, clustered, args.seed + 100 + clustered)
        rng = np.random.default_rng(args.seed + clustered)
        scen = "clustered" if clustered else "iid"
        for _ in range(args.reps):
            for kind, fn in (
                ("classification", cls_intervals),
                ("paired", paired_intervals),
                ("segmentation", seg_intervals),
            ):
                for name, lo, hi, t in fn(rng, args.n, args.boot, clustered, truth):
                    rows.setdefault(f"{scen} data | {kind} | {name}", []).append((lo <= t <= hi, hi - lo))
    table = {}
    for key, v in rows.items():
        hit = np.array([c for c, _ in v], dtype=float)
        cov = float(hit.mean())
        se = math.sqrt(max(cov * (1 - cov), 1e-12) / hit.size)
        width = round(float(np.mean([w for _, w in v])), 4)
        table[key] = {"coverage": round(cov, 4), "mc_se": round(se, 4), "mean_width": width,
                      "within_2pct": round(abs(cov - 0.95), 9) <= 0.02, "reps": int(hit.size)}  # fmt: skip
    null = null_rejection(args.null_reps, args.n, args.boot, args.seed + 7) if args.null_reps else {}
    result = {
        "null_rejection_rate_at_0.05": null, "null_reps": args.null_reps, "reps": args.reps, "boot": args.boot,
        "n": args.n, "truth_n": args.truth_n, "seed": args.seed, "cpu_count": os.cpu_count(),
        "wall_s": round(time.perf_counter() - t0, 1), "coverage": table,
    }  # fmt: skip
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
