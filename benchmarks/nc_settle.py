# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Seed-aware verdicts for the neural-collapse bias sweep (``nc_bench.py --part sweep --workdir DIR``).

The sweep trains ``bundles/neural_collapse_classification`` with 0, 0.25, 0.5 and 0.75 of group F's training
positives recorded as negative, one run per fraction and seed, all in ``DIR``. This script scores those runs the way
the fairness trial scores its arms, and tests the paper's claim (Mouheb et al., MICCAI 2024: label bias in one
subgroup can lower the F1 of the *other* subgroup too):

1. each run's model predicts the validation and test cases with the bundle's own evaluator and checkpoint loader,
   through the trial's evaluation overlay (``bundles/fairness_trial/configs/trial_evaluate.json``), written as
   ``DIR/bias<f>_seed<s>/predictions/model_{validation,test}.csv``;
2. for every flipped fraction, ``python -m monai_fair compare`` compares its runs with the unbiased runs on the same
   test cases, seed-aware (``--seed-pairing paired``: seed i of both sides shares its initialisation and data
   order; random effects over seeds with the test-case covariance inside, Holm over the comparison's figures);
3. the claim's figure, the test F1 of the group whose labels were **not** flipped (``M``), is printed with the F1 of
   the flipped group and overall as one Markdown table (``DIR/nc_settle.md``, ``DIR/nc_settle.json``).

    python benchmarks/nc_bench.py --part sweep --seeds 0 1 2 3 4 --epochs 60 --threads 1 --workdir DIR --out OUT
    python benchmarks/nc_settle.py --workdir DIR --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OVERLAY = REPO / "bundles" / "fairness_trial" / "configs" / "trial_evaluate.json"
FIGURES = (("M", "f1"), ("F", "f1"), ("overall", "f1"), ("M", "tpr"), ("F", "tpr"))


def predict(run: Path, data: Path) -> Path:
    """The run's validation and test predictions (kept when already written)."""
    out = run / "predictions"
    test = out / "model_test.csv"
    if test.is_file():
        return test
    cfg = run / "configs"
    files = [str(cfg / "train.json"), str(cfg / "evaluate.json"), str(OVERLAY)]
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", json.dumps(files)]
    cmd += ["--bundle_root", str(run), "--dataset_dir", str(data), "--trial_output", str(out)]
    cmd += ["--meta_file", str(cfg / "metadata.json"), "--logging_file", str(cfg / "logging.conf")]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode or not test.is_file():
        raise RuntimeError(f"evaluation of {run} failed:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    return test


def _row(comp: dict, group: str, metric: str) -> dict | None:
    for f in comp["figures"]:
        name = f["group_name"] if f["scope"] == "group" else f["scope"]
        if f["figure"] == metric and name == group:
            return f
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", required=True, help="the nc_bench.py --workdir folder")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.25, 0.5, 0.75])
    ap.add_argument("--n-bootstrap", dest="n_bootstrap", type=int, default=1000)
    args = ap.parse_args()
    work = Path(args.workdir)
    data = work / "data"
    base = [predict(work / f"bias0_seed{s}", data) for s in args.seeds]
    lines = [
        "| flipped vs 0 | figure | group | Δ (biased − unbiased) | seed-aware 95 % CI | p | p (Holm) | verdict "
        "| conditional CI (secondary) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    results = {}
    for frac in args.fractions:
        other = [predict(work / f"bias{frac:g}_seed{s}", data) for s in args.seeds]
        out = work / f"compare_{frac:g}"
        cmd = [sys.executable, "-m", "monai_fair", "compare", "--base", *map(str, base), "--other", *map(str, other)]
        cmd += ["--names", "unbiased", f"flipped_{frac:g}", "--out", str(out), "--seed-pairing", "paired"]
        cmd += ["--n-bootstrap", str(args.n_bootstrap), "--no-plots", "--task", "classification"]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        comp = json.loads((out / "compare.json").read_text())["comparisons"][0]
        results[f"{frac:g}"] = {}
        for group, metric in FIGURES:
            f = _row(comp, group, metric)
            if f is None:
                continue
            results[f"{frac:g}"][f"{group}/{metric}"] = f
            ci, cond = f["ci"], (f.get("conditional") or {}).get("ci") or [float("nan")] * 2
            lines.append(
                f"| {frac:g} | {metric} | {group} | {f['difference']:+.3f} | [{ci[0]:+.3f}, {ci[1]:+.3f}] "
                f"| {f['p_value']:.3g} | {f.get('p_holm', float('nan')):.3g} | {f.get('verdict', '')} "
                f"| [{cond[0]:+.3f}, {cond[1]:+.3f}] |"
            )
    (work / "nc_settle.md").write_text("\n".join(lines) + "\n")
    (work / "nc_settle.json").write_text(json.dumps(results, indent=1, default=str))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
