# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The comparison report of a fairness trial: every arm against ERM on the same test cases, seeds combined.

Inputs are the per-case prediction files of every run (``runs/<recipe>/seed_<s>/predictions/<tag>_{validation,
test}.csv``). For each arm the report holds:

* **every seed's fairness report** (:func:`monai_fair.report.write_fairness_report`, test split) at a decision
  threshold chosen on validation (Youden; per group for the ``group_thresholds`` arm), with its source named;
* the **paired comparison against ERM** (:func:`monai_fair.metrics.comparison.compare_models`: paired DeLong for
  AUC figures, paired case bootstrap otherwise; seeds combined as the difference of seed-averaged figures; with
  several seeds the **seed-aware** interval and test of :mod:`monai_fair.metrics.seeds` are the primary ones, seeds
  paired only for arms that score ERM's own training runs, independent otherwise; the conditional interval stays
  beside it, labelled), twice: on the raw scores (threshold-free figures: AUC, worst-group AUC, AUC gap, ES-AUC) and
  on the decisions at each model's validation-chosen threshold (accuracy, worst-group accuracy, EOdds), so that a
  calibration problem is not mistaken for unfairness. For segmentation: Dice, worst-group Dice, Dice gap, ES-Dice;
* a **verdict per headline figure** (improves / harms / no evidence): Holm's correction runs over every headline
  figure of every arm of the trial (one family), at ``alpha``;
* **seed planning**: the smallest method effect the seeds could detect and the seeds per arm the measured
  variances would need to detect ``tolerance``;
* its **cost**: process CPU time of its runs (training stages and its evaluation; wall time where no CPU time was
  recorded) as a ratio to ERM's, per seed.

Figures at a validation-chosen threshold are computed by mapping each model's scores monotonically so that its
threshold ``t`` falls on 0.5 (``s' = s / (2t)`` below ``t``, ``0.5 + (s - t) / (2 (1 - t))`` above): decisions at
0.5 then equal decisions at ``t``; AUCs are computed on the raw scores only.

Outputs under ``<out>/report/``: ``trial_report.json``, ``trial_report.md`` (ranked table, verdicts, costs,
per-seed values), ``pareto.png`` (differences to ERM with CIs: overall vs worst-group, vs gap, vs EOdds), and
``arms/<arm>/seed_<s>/`` (each seed's fairness report).
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai_fair.report.inputs import ReportOptions
from monai_fair.trial.arms import REFERENCE, Arm, eval_tag

__all__ = ["HEADLINE", "write_trial_report", "format_trial_summary", "threshold_scores"]

#: headline figures per task: (figure, which comparison: "raw" scores or "thresholded" at validation)
HEADLINE: dict[str, tuple[tuple[str, str], ...]] = {
    "classification": (
        ("auc", "raw"),
        ("worst_group_auc", "raw"),
        ("auc_gap", "raw"),
        ("es_auc", "raw"),
        ("accuracy", "thresholded"),
        ("worst_group_accuracy", "thresholded"),
        ("eodds", "thresholded"),
    ),
    "segmentation": (("dice", "raw"), ("worst_group_dice", "raw"), ("dice_gap", "raw"), ("es_dice", "raw")),
}
_VERDICT = {"better": "improves", "worse": "harms"}


def threshold_scores(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Monotone map of scores in [0, 1] putting each case's threshold ``t`` on 0.5 (see the module docstring)."""
    s = np.clip(np.asarray(scores, dtype=float), 0.0, 1.0)
    t = np.clip(np.asarray(thresholds, dtype=float), 1e-6, 1 - 1e-6)
    return np.where(s < t, 0.5 * s / t, 0.5 + 0.5 * (s - t) / (1.0 - t))


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _reference(datalist: Path, split: str) -> tuple[list[str], np.ndarray, np.ndarray | None, list[str]]:
    from monai_fair.data import load_fair_datalist

    items, names = load_fair_datalist(datalist, split=split)[:2]
    ids = [str(it["case_id"]) for it in items]
    group = np.array([int(it["group"]) for it in items], dtype=np.int64)
    try:
        y = np.array([int(it["label"]) for it in items], dtype=np.int64)
    except (TypeError, ValueError):
        y = None  # segmentation: the label is a mask
    return ids, group, y, [str(n) for n in names]


def _align(rows: list[dict[str, str]], ids: list[str], path: Path) -> list[dict[str, str]]:
    by_id = {r["case_id"]: r for r in rows}
    missing = [c for c in ids if c not in by_id]
    if missing:
        raise ValueError(f"{path}: no prediction for {len(missing)} case(s), e.g. {missing[0]!r}.")
    return [by_id[c] for c in ids]


def _scores(rows: list[dict[str, str]], task: str, path: Path) -> dict[str, np.ndarray]:
    if task == "segmentation":
        return {
            "dice": np.array([float(r["dice"]) for r in rows]),
            "iou": np.array([float(r["iou"]) for r in rows]),
        }
    probs = [k for k in rows[0] if k.startswith("prob_")]
    if len(probs) != 2:
        raise ValueError(
            f"{path}: the trial's classification report needs a binary task (2 prob_ columns), got {probs}."
        )
    return {"score": np.array([float(r[probs[1]]) for r in rows])}


class _Runs:
    """Prediction files and timings of every (arm, seed)."""

    def __init__(self, out: Path, arms: Sequence[Arm], seeds: Sequence[int]) -> None:
        self.out, self.arms, self.seeds = out, list(arms), list(seeds)
        registry = {a.name: a for a in arms}
        self.tag = {a.name: eval_tag(a, registry) for a in arms}
        self.records: dict[tuple[str, int], dict] = {}
        for a in arms:
            for s in seeds:
                p = out / "runs" / a.recipe_name / f"seed_{s}" / "run.json"
                if p.is_file():
                    rec = json.loads(p.read_text())
                    if rec.get("trained") and self.tag[a.name] in rec.get("evals", {}):
                        self.records[(a.name, s)] = rec

    def done(self, arm: str, seed: int) -> bool:
        return (arm, seed) in self.records

    def predictions(self, arm: Arm, seed: int, split: str) -> Path:
        return (
            self.out / "runs" / arm.recipe_name / f"seed_{seed}" / "predictions" / f"{self.tag[arm.name]}_{split}.csv"
        )

    def cost(self, arm: Arm, seed: int) -> float | None:
        rec = self.records.get((arm.name, seed))
        if rec is None:
            return None
        steps = [st for st in rec["steps"] if st["kind"] == "train"] + [rec["evals"][self.tag[arm.name]]]
        # process CPU time (user + system, child processes included): unlike wall time, not inflated by other load;
        # a GPU run's work is on the GPU, which CPU time misses: wall time there (compare on an otherwise idle GPU)
        cpu = rec.get("device", "cpu") == "cpu" and all(st.get("cpu_s") is not None for st in steps)
        key = "cpu_s" if cpu else "wall_s"
        return sum(st[key] for st in steps)


def _fit_thresholds(arm: Arm, val: dict[str, np.ndarray], yv: np.ndarray, gv: np.ndarray, k: int) -> dict[str, Any]:
    from monai_fair.methods.group_thresholds import fit_group_thresholds, fit_threshold

    if arm.post == "group_thresholds":
        fit = fit_group_thresholds(val["score"], yv, gv, num_groups=k, criterion="equal_tpr")
        return {
            "per_group": [float(t) for t in fit["thresholds"]],
            "source": "validation, one per group (equal TPR at the pooled Youden operating point)",
            "fitted": [bool(f) for f in fit["fitted"]],
        }
    return {"global": float(fit_threshold(val["score"], yv)), "source": "validation (Youden's J)"}


def _public_thresholds(th: Mapping[str, Any] | None, shown: np.ndarray, names: list[str]) -> dict | None:
    """The thresholds as written to the report: per-group values only for groups that are not suppressed."""
    if th is None or "per_group" not in th:
        return None if th is None else dict(th)
    out = {k: v for k, v in th.items() if k not in ("per_group", "fitted")}
    out["per_group"] = {names[g]: th["per_group"][g] for g in range(len(names)) if shown[g]}
    return out


def _case_thresholds(th: Mapping[str, Any], group: np.ndarray) -> np.ndarray:
    if "per_group" in th:
        return np.asarray(th["per_group"])[group]
    return np.full(group.size, th["global"])


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:+.{digits}f}" if isinstance(v, float) and v < 0 else f"{v:.{digits}f}"


def write_trial_report(
    out: str | Path,
    arms: Sequence[Arm],
    seeds: Sequence[int],
    task: str,
    datalist: str | Path,
    n_bootstrap: int = 1000,
    ci: float = 0.95,
    alpha: float = 0.05,
    min_group_size: int = 10,
    seed_reports: bool = True,
    tolerance: float = 0.05,
    plots: bool = True,
) -> dict[str, str]:
    """Write the trial's comparison report (see the module docstring) and return its file paths.

    Args:
        out: the trial folder.
        arms: the trial's arms (the task's reference arm first).
        seeds: the trial's seeds.
        task: ``"classification"`` or ``"segmentation"``.
        datalist: the datalist (authoritative labels and groups of the validation and test cases).
        n_bootstrap, ci, alpha: the paired comparison's bootstrap size, interval level and family-wise error rate.
        min_group_size: suppression threshold; suppressed groups appear in no output.
        seed_reports: write every seed's fairness report (at ``ci``, ``alpha`` and ``tolerance``).
        tolerance: the seed reports' verdict tolerance (largest negligible gap, in the figure's units), and the
            method effect a design should detect: each headline row reports the seeds per arm the measured variances
            would need for it (80 % power).
        plots: write the Pareto plot (and the seed reports' plots).
    """
    from monai_fair.utils.serialization import to_json_safe

    t0 = time.perf_counter()
    out = Path(out)
    rep_dir = out / "report"
    rep_dir.mkdir(parents=True, exist_ok=True)
    datalist = Path(datalist)
    runs = _Runs(out, arms, seeds)
    ref_name = REFERENCE[task] if any(a.name == REFERENCE[task] for a in arms) else arms[0].name
    ref = next(a for a in arms if a.name == ref_name)
    ids, group, y, names = _reference(datalist, "test")
    vids, vgroup, vy, _ = _reference(datalist, "validation")
    k = len(names)
    data = _load_predictions(runs, task, ids, group, vids, vgroup, vy, k)
    flags: dict[str, dict[int, list[str]]] = {}
    if seed_reports:
        seed_options = ReportOptions(
            min_group_size=min_group_size, n_bootstrap=200, ci=ci, alpha=alpha, tolerance=tolerance, split="test"
        )
        flags = _write_seed_reports(rep_dir, data, task, y, group, names, seed_options)
    kinds = sorted({kind for _, kind in HEADLINE[task]})
    stats = dict(min_group_size=min_group_size, n_bootstrap=n_bootstrap, ci=ci, alpha=alpha)
    comparisons = _paired_comparisons(data, arms, ref, task, kinds, y, group, names, stats)
    headline = _headline(comparisons, task, alpha, tolerance, ci)
    # groups that may be named (enough validation and test cases): per-group thresholds of the others stay hidden
    shown = (np.bincount(group, minlength=k) >= min_group_size) & (np.bincount(vgroup, minlength=k) >= min_group_size)
    report = {
        "task": task,
        "reference": ref.name,
        "seeds": list(seeds),
        "n_test_cases": len(ids),
        "suppression": None,
        "ci_level": ci,
        "alpha": alpha,
        "n_bootstrap": n_bootstrap,
        "multiple_testing": {"method": "holm", "family": "every headline figure of every arm", "size": len(headline)},
        "headline": headline,
        "arms": _arms_summary(runs, arms, seeds, ref, data, shown, names),
        "comparisons": comparisons,
        "missing_runs": [f"{a.name}/seed_{s}" for a in arms for s in seeds if not runs.done(a.name, s)],
        "flags": flags,
        "tolerance": tolerance,
        "seed_pairing": {a: c["seed_pairing"] for a, c in comparisons.items()},
        "notes": _degenerate_notes(data, task) + _override_notes(out),
    }
    if comparisons:
        first = next(iter(comparisons.values()))
        report["suppression"] = first[kinds[0]]["suppression"]
    report["report_wall_s"] = time.perf_counter() - t0
    paths = {"json": str(rep_dir / "trial_report.json"), "md": str(rep_dir / "trial_report.md")}
    Path(paths["json"]).write_text(json.dumps(to_json_safe(report), indent=1, allow_nan=False))
    Path(paths["md"]).write_text(format_trial_markdown(report))
    if plots and headline:
        paths["pareto"] = str(plot_pareto(report, rep_dir / "pareto.png"))
    return paths


def _override_notes(out: Path) -> list[str]:
    """What the trial's overrides did per arm (recorded in ``trial.json`` by the runner)."""
    try:
        notes = json.loads((out / "trial.json").read_text()).get("override_notes") or {}
    except (OSError, ValueError):
        return []
    return [f"{arm}: {n}" for arm, items in notes.items() for n in items]


def _degenerate_notes(data: Mapping[str, Mapping[int, Mapping[str, Any]]], task: str) -> list[str]:
    """Models whose test decisions are all one class at 0.5 but not at their validation-chosen threshold."""
    if task != "classification":
        return []
    notes = []
    for arm, per_seed in data.items():
        for s, e in per_seed.items():
            at_half = e["test"]["score"] >= 0.5
            at_val = e["thresholded"] >= 0.5
            if at_half.all() != at_half.any() or at_val.all() == at_val.any():
                continue
            cls = "positive" if at_half.all() else "negative"
            notes.append(
                f"{arm}, seed {s}: every test case is {cls} at threshold 0.5 (degenerate there), not at its "
                "validation-chosen threshold, which the report uses; a deployment at 0.5 would be degenerate."
            )
    return notes


def _load_predictions(
    runs: _Runs,
    task: str,
    ids: list[str],
    group: np.ndarray,
    vids: list[str],
    vgroup: np.ndarray,
    vy: np.ndarray | None,
    k: int,
) -> dict[str, dict[int, dict[str, Any]]]:
    """Test scores (and validation-chosen thresholds) of every finished (arm, seed), aligned to the datalist."""
    data: dict[str, dict[int, dict[str, Any]]] = {}
    for arm in runs.arms:
        for s in runs.seeds:
            if not runs.done(arm.name, s):
                continue
            tp, vp = runs.predictions(arm, s, "test"), runs.predictions(arm, s, "validation")
            test = _scores(_align(_read_csv(tp), ids, tp), task, tp)
            entry: dict[str, Any] = {"test": test}
            if task == "classification":
                val = _scores(_align(_read_csv(vp), vids, vp), task, vp)
                entry["thresholds"] = _fit_thresholds(arm, val, vy, vgroup, k)
                entry["thresholded"] = threshold_scores(test["score"], _case_thresholds(entry["thresholds"], group))
            data.setdefault(arm.name, {})[s] = entry
    return data


def _write_seed_reports(
    rep_dir: Path,
    data: Mapping[str, Mapping[int, Mapping[str, Any]]],
    task: str,
    y: np.ndarray | None,
    group: np.ndarray,
    names: list[str],
    options: ReportOptions,
) -> dict[str, dict[int, list[str]]]:
    """Write every seed's fairness report (test split); return their flags per arm and seed."""
    from dataclasses import replace

    from monai_fair.report import ClassificationInputs, SegmentationInputs, write_fairness_report

    flags: dict[str, dict[int, list[str]]] = {}
    for arm_name, per_seed in data.items():
        for s, e in per_seed.items():
            d = rep_dir / "arms" / arm_name / f"seed_{s}"
            inputs: ClassificationInputs | SegmentationInputs
            if task == "classification":
                th = e["thresholds"]
                per_group = "per_group" in th
                inputs = ClassificationInputs(
                    y=y, group=group, group_names=names, y_score=e["test"]["score"], threshold_source=th["source"],
                    y_pred=(e["thresholded"] >= 0.5).astype(np.int64) if per_group else None,
                    threshold=None if per_group else th["global"],
                )  # fmt: skip
            else:
                inputs = SegmentationInputs(
                    dice=e["test"]["dice"], iou=e["test"]["iou"], group=group, group_names=names
                )
            rep = write_fairness_report(d, inputs, replace(options, seed=s), plots=False)
            if rep.get("flags"):
                flags.setdefault(arm_name, {})[s] = list(rep["flags"])
    return flags


def _paired_comparisons(
    data: Mapping[str, Mapping[int, Mapping[str, Any]]],
    arms: Sequence[Arm],
    ref: Arm,
    task: str,
    kinds: list[str],
    y: np.ndarray | None,
    group: np.ndarray,
    names: list[str],
    stats: Mapping[str, Any],
) -> dict[str, dict[str, Any]]:
    """Every arm against its reference (the arm's own ``reference``, else the task's) on the seeds both have, per
    kind (raw scores / validation thresholds)."""
    by_name = {a.name: a for a in arms}
    comparisons: dict[str, dict[str, Any]] = {}
    for arm in arms:
        r = by_name.get(arm.reference or "", ref)
        base_seeds = sorted(data.get(r.name, {}))
        if arm.name == r.name or arm.name not in data or not base_seeds:
            continue
        pairing = seed_pairing(arm, r)
        if pairing == "paired":  # the same training runs: seed i of both arms is one run
            seeds_b = seeds_a = [s for s in base_seeds if s in data[arm.name]]
        else:  # independent samples of each method's training randomness: every finished seed counts
            seeds_b, seeds_a = base_seeds, sorted(data[arm.name])
        if not seeds_a:
            continue
        comparisons[arm.name] = {
            "seeds": seeds_a, "reference_seeds": seeds_b, "seed_pairing": pairing, "reference": r.name,
        }  # fmt: skip
        base = [data[r.name][s] for s in seeds_b]
        other = [data[arm.name][s] for s in seeds_a]
        st = {**stats, "seed_pairing": pairing if len(seeds_a) > 1 else "independent"}
        for kind in kinds:
            comparisons[arm.name][kind] = _compare(base, other, task, kind, y, group, names, st)
    return comparisons


def seed_pairing(arm: Arm, ref: Arm) -> str:
    """``"paired"`` when the arm scores the reference's own training runs (same recipe: seed ``i`` is one run),
    else ``"independent"``: a seed fixes the initialisation only within one bundle and sampler, so the runs of
    different recipes are treated as independent samples (valid whatever the seed shares)."""
    return "paired" if arm.recipe_name == ref.recipe_name else "independent"


def _compare(
    base: Sequence[Mapping[str, Any]],
    other: Sequence[Mapping[str, Any]],
    task: str,
    kind: str,
    y: np.ndarray | None,
    group: np.ndarray,
    names: list[str],
    stats: Mapping[str, Any],
) -> dict[str, Any]:
    """One paired comparison (:func:`monai_fair.metrics.comparison.compare_models`) of two arms' seeds."""
    from monai_fair.metrics.comparison import compare_models

    common = dict(num_groups=len(names), group_names=names, **stats)
    if task == "segmentation":
        return compare_models(
            None, group, [e["test"]["dice"] for e in base], [e["test"]["dice"] for e in other], task="segmentation",
            base_iou=[e["test"]["iou"] for e in base], other_iou=[e["test"]["iou"] for e in other], **common,
        )  # fmt: skip
    get = (lambda e: e["test"]["score"]) if kind == "raw" else (lambda e: e["thresholded"])
    return compare_models(
        y, group, [get(e) for e in base], [get(e) for e in other], task="classification", threshold=0.5, **common
    )


def _headline(
    comparisons: Mapping[str, Mapping[str, Any]], task: str, alpha: float, tolerance: float = 0.05, ci: float = 0.95
) -> list[dict[str, Any]]:
    """The headline figures of every arm, with Holm-adjusted p-values over all of them and a verdict each.

    With several seeds the p-value and interval are seed-aware (:mod:`monai_fair.metrics.seeds`); each row also
    holds the conditional interval (secondary), the smallest detectable method effect and the seeds per arm that
    the measured variances would need to detect ``tolerance``.
    """
    from monai_fair.metrics.comparison import figure_direction
    from monai_fair.metrics.multiplicity import holm_adjust
    from monai_fair.metrics.seeds import seeds_needed

    headline: list[dict[str, Any]] = []
    for arm_name, comp in comparisons.items():
        for fig, kind in HEADLINE[task]:
            entry = next(
                (f for f in comp[kind]["figures"] if f["figure"] == fig and f["scope"] in ("overall", "fairness")), None
            )
            row = {"arm": arm_name, "figure": fig, "threshold": "validation" if kind == "thresholded" else None}
            row["reference"] = comp.get("reference")
            if entry is not None:
                row.update({k2: entry.get(k2) for k2 in ("base", "other", "difference", "ci", "p_value", "ci_method")})
                row.update({k2: entry.get(k2) for k2 in ("base_per_seed", "other_per_seed", "paired_seed_sd")})
                seed_keys = ("conditional", "detectable_effect", "seed_df", "case_variance")
                row.update({k2: entry.get(k2) for k2 in seed_keys})
                row["seed_pairing"] = comp.get("seed_pairing") if entry.get("conditional") else None
                if entry.get("seed_terms"):
                    row["seeds_needed"] = seeds_needed(entry["seed_terms"], entry.get("case_variance"), tolerance, ci)
            headline.append(row)
    pv = [r.get("p_value") if r.get("p_value") is not None else float("nan") for r in headline]
    for r, p in zip(headline, holm_adjust(pv) if headline else []):
        r["p_holm"] = None if math.isnan(p) else float(p)
        d = r.get("difference")
        if r["p_holm"] is not None and r["p_holm"] < alpha and d is not None and d != 0:
            better = (d > 0) == (figure_direction(r["figure"]) == "higher")
            r["verdict"] = _VERDICT["better" if better else "worse"]
        else:
            r["verdict"] = "no evidence"
    return headline


def _arms_summary(
    runs: _Runs,
    arms: Sequence[Arm],
    seeds: Sequence[int],
    ref: Arm,
    data: Mapping[str, Mapping[int, Mapping[str, Any]]],
    shown: np.ndarray,
    names: list[str],
) -> list[dict[str, Any]]:
    """Per arm: its settings, per-seed status and cost (ratio to the reference) and its public thresholds."""
    arms_out = []
    for arm in arms:
        per_seed = {}
        for s in seeds:
            c = runs.cost(arm, s)
            cr = runs.cost(ref, s)
            per_seed[s] = {"done": runs.done(arm.name, s), "cost_s": c, "cost_ratio": c / cr if c and cr else None}
        ratios = [v["cost_ratio"] for v in per_seed.values() if v["cost_ratio"] is not None]
        arms_out.append({
            **arm.to_dict(), "seeds": per_seed,
            "cost_ratio_mean": float(np.mean(ratios)) if ratios else None,
            "cost_ratio_sd": float(np.std(ratios, ddof=1)) if len(ratios) > 1 else None,
            "thresholds": {s: _public_thresholds(data[arm.name][s].get("thresholds"), shown, names)
                           for s in data.get(arm.name, {})},
        })  # fmt: skip
    return arms_out


def _rows_by_arm(report: Mapping[str, Any]) -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = {}
    for r in report["headline"]:
        out.setdefault(r["arm"], {})[r["figure"]] = r
    return out


def _seed_mean_sd(vals: Sequence[float] | None) -> str:
    v = [x for x in (vals or []) if x is not None]
    if not v:
        return "n/a"
    sd = f" ± {np.std(v, ddof=1):.3f}" if len(v) > 1 else ""
    return f"{np.mean(v):.3f}{sd}"


def _vs(row: Mapping[str, Any], report: Mapping[str, Any]) -> str:
    """`` (vs <arm>)`` when the row's reference is an arm's own (e.g. APPLE's deployed model), not the report's."""
    ref = row.get("reference")
    return f" (vs {ref})" if ref and ref != report["reference"] else ""


def format_trial_markdown(report: Mapping[str, Any]) -> str:
    """The trial report as Markdown: ranked table, verdicts with CIs, costs, missing runs."""
    task = report["task"]
    worst = "worst_group_auc" if task == "classification" else "worst_group_dice"
    lines = _markdown_intro(report, worst)
    lines += _markdown_ranked_table(report, worst)
    lines += ["", "▲ improves / ▼ harms: Holm-adjusted p < alpha, by the figure's direction (gaps and EOdds: lower "
              "is better); otherwise no evidence.", "", "## Verdicts", ""]  # fmt: skip
    lines += _pairing_lines(report)
    lines += [
        "| arm | figure | Δ vs reference | CI | p | p (Holm) | verdict | conditional CI (secondary) | "
        "smallest detectable Δ | seeds per arm for ±" + f"{report.get('tolerance', 0.05):g} |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["headline"]:
        c = r.get("ci") or [None, None]
        cc = (r.get("conditional") or {}).get("ci") or [None, None]
        fig = r["figure"] + (" @val threshold" if r.get("threshold") else "")
        need = r.get("seeds_needed")
        need_s = "n/a" if "seeds_needed" not in r else f"{need}" if need is not None else _no_seeds(r, report)
        lines.append(
            f"| {r['arm']} | {fig} | {_fmt(r.get('difference'))}{_vs(r, report)} | [{_fmt(c[0])}, {_fmt(c[1])}] | "
            f"{_fmt(r.get('p_value'), 4)} | {_fmt(r.get('p_holm'), 4)} | {r['verdict']} | "
            f"[{_fmt(cc[0])}, {_fmt(cc[1])}] | {_fmt(r.get('detectable_effect'))} | {need_s} |"
        )
    if report.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report["notes"]]
    lines += ["", "## Arms", "", "Cost: process CPU time of an arm's runs (training and evaluation, child processes "
              "included) over ERM's, per seed; wall time for runs on a GPU.", "",
              "| arm | bundle | mechanism | target | what it does | cost ratio (± SD over seeds) |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for a in report["arms"]:
        cr = a.get("cost_ratio_mean")
        sd = a.get("cost_ratio_sd")
        cost = "n/a" if cr is None else f"{cr:.2f}" + (f" ± {sd:.2f}" if sd is not None else "")
        lines.append(
            f"| {a['name']} | {a['bundle']} | {a['mechanism']} | {a['target']} | {a['description']} | {cost} |"
        )
    if report.get("flags"):
        lines += ["", "## Flags (test split, at the validation-chosen threshold)", ""]
        for arm, per_seed in report["flags"].items():
            for seed, items in per_seed.items():
                lines += [f"- {arm}, seed {seed}: {msg}" for msg in items]
    if report.get("missing_runs"):
        lines += ["", f"Missing (failed or not yet run): {', '.join(report['missing_runs'])}."]
    lines += ["", "Per-seed fairness reports: `report/arms/<arm>/seed_<s>/`; all figures of every comparison "
              "(per group, after suppression): `trial_report.json`."]  # fmt: skip
    return "\n".join(lines) + "\n"


def _no_seeds(row: Mapping[str, Any], report: Mapping[str, Any]) -> str:
    """Why no number of seeds reaches the tolerance: the test set alone, or more than 200 seeds."""
    cv = row.get("case_variance")
    if cv is not None and 2.8 * math.sqrt(cv) > report.get("tolerance", 0.05):  # z_0.975 + z_0.8 = 2.80
        return "none (the test set alone is too small)"
    return "> 200"


def _pairing_lines(report: Mapping[str, Any]) -> list[str]:
    """How seeds were paired, and what the conditional interval and the planning columns mean."""
    from monai_fair.report.seed_compare import PAIRING_TEXT

    pairing = report.get("seed_pairing") or {}
    if not pairing:
        return []
    by = {}
    for arm, p in pairing.items():
        by.setdefault(p, []).append(arm)
    text = "; ".join(f"{PAIRING_TEXT[p]}: {', '.join(a)}" for p, a in by.items())
    return [
        f"Seed pairing used: {text}. With one seed per arm the CI is the conditional one (no seed variance).",
        "The conditional CI (secondary) covers only the test-set sampling of these trained models; the verdict uses "
        "the seed-aware CI and p. Smallest detectable Δ: 80 % power at the two-sided level 1 - CI level; seeds per "
        "arm: from the measured seed and test-set variances. `--add-seeds N` after looking at a verdict is a "
        "sequential design: its error rate is then no longer the nominal one (plan the seeds in advance).",
        "",
    ]


def _markdown_intro(report: Mapping[str, Any], worst: str) -> list[str]:
    """The Markdown report's title, method paragraph and the ranked table's heading."""
    task = report["task"]
    ref = report["reference"]
    return [
        f"# Fairness trial ({task})",
        "",
        f"Reference: **{ref}**. Seeds: {report['seeds']}. Test cases: {report['n_test_cases']}. Every difference is "
        "on the same test cases, seeds combined (difference of seed-averaged figures); with several seeds its "
        f"{report['ci_level']:.0%} CI and p-value are seed-aware (training randomness + test-set sampling: "
        "random effects over seeds, Satterthwaite t), the conditional interval ("
        + ("paired DeLong for AUC, " if task == "classification" else "")
        + f"paired case bootstrap B={report['n_bootstrap']}"
        + (" otherwise" if task == "classification" else "")
        + ") beside it; verdicts use Holm-adjusted p-values over all "
        f"{report['multiple_testing']['size']} headline tests of the trial (alpha={report['alpha']})."
        + (
            " Threshold-based figures use each model's threshold chosen on validation."
            if task == "classification"
            else ""
        ),
        "",
        "## Ranked table",
        "",
        f"Arms ranked by the difference in {worst} to {ref} (mean over seeds ± SD over seeds of each arm's value).",
        "",
    ]


def _rank_key(row: Mapping[str, Any]) -> tuple[int, float]:
    """Rank by the difference to the reference (higher first); a difference of exactly 0 is a value, not missing."""
    d = row.get("difference")
    return (1, 0.0) if d is None or not math.isfinite(d) else (0, -d)


def _markdown_ranked_table(report: Mapping[str, Any], worst: str) -> list[str]:
    """The ranked table's rows: the reference, then the arms by their difference in ``worst`` to it."""
    figs = [f for f, _ in HEADLINE[report["task"]]]
    by_arm = _rows_by_arm(report)
    arm_info = {a["name"]: a for a in report["arms"]}
    ranked = sorted(by_arm, key=lambda a: _rank_key(by_arm[a].get(worst, {})))
    head = "| rank | arm | " + " | ".join(figs) + " | cost ratio |"
    lines = [head, "|" + "---|" * (len(figs) + 3)]
    ref_vals = {}
    for r in report["headline"]:
        ref_vals.setdefault(r["figure"], r.get("base_per_seed"))
    ref_cells = " | ".join(_seed_mean_sd(ref_vals.get(f)) for f in figs)
    lines.append(f"| - | {report['reference']} (reference) | " + ref_cells + " | 1.00 |")
    for i, a in enumerate(ranked, 1):
        cells = []
        for f in figs:
            r = by_arm[a].get(f, {})
            d, c = r.get("difference"), r.get("ci") or [None, None]
            mark = {"improves": " ▲", "harms": " ▼"}.get(r.get("verdict"), "")
            cells.append(f"{_seed_mean_sd(r.get('other_per_seed'))} (Δ {_fmt(d)} [{_fmt(c[0])}, {_fmt(c[1])}]){mark}")
        cr = arm_info.get(a, {}).get("cost_ratio_mean")
        lines.append(f"| {i} | {a} | " + " | ".join(cells) + f" | {_fmt(cr, 2)} |")
    return lines


def _error_bar(value: float, ci: Sequence[float | None] | None) -> list[list[float]]:
    """``[[below], [above]]`` for ``errorbar``: 0 for a missing or NaN bound, and never negative (a zero-width
    interval can sit a rounding error beside its point, which ``errorbar`` refuses)."""
    lo, hi = ci if ci else (None, None)
    below = value - lo if lo is not None and math.isfinite(lo) else 0.0
    above = hi - value if hi is not None and math.isfinite(hi) else 0.0
    return [[max(below, 0.0)], [max(above, 0.0)]]


def plot_pareto(report: Mapping[str, Any], path: str | Path) -> Path:
    """Differences to the reference with their (seed-aware) CIs: overall vs worst-group, overall vs gap and
    (classification) overall vs EOdds at the validation-chosen threshold."""
    from monai_fair.report.plots import _pyplot, _save

    plt = _pyplot()
    task = report["task"]
    overall, worst, gap = ("auc", "worst_group_auc", "auc_gap") if task == "classification" else (
        "dice", "worst_group_dice", "dice_gap")  # fmt: skip
    by_arm = _rows_by_arm(report)
    panels = [(worst, f"Δ {worst} (higher is better)"), (gap, f"Δ {gap} (lower is better)")]
    if task == "classification":  # the threshold figures: a shortcut's fix shows there first
        panels.append(("eodds", "Δ eodds at the validation threshold (lower is better)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.6))
    for ax, (yfig, ylab) in zip(axes, panels):
        ax.axhline(0, color="0.6", lw=0.8)
        ax.axvline(0, color="0.6", lw=0.8)
        ax.plot([0], [0], "ks")
        ax.annotate(report["reference"], (0, 0), textcoords="offset points", xytext=(4, 4), fontsize=8)
        for arm, rows in by_arm.items():
            rx, ry = rows.get(overall, {}), rows.get(yfig, {})
            if rx.get("difference") is None or ry.get("difference") is None:
                continue
            x, yv = rx["difference"], ry["difference"]
            xerr, yerr = _error_bar(x, rx.get("ci")), _error_bar(yv, ry.get("ci"))
            ax.errorbar([x], [yv], xerr=xerr, yerr=yerr, fmt="o", ms=4, capsize=2)
            ax.annotate(arm, (x, yv), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xlabel(f"Δ {overall} vs {report['reference']} (higher is better)")
        ax.set_ylabel(ylab)
    fig.suptitle(
        f"Fairness trial ({task}, test split): differences to {report['reference']}, seeds combined, "
        f"{report['ci_level']:.0%} CIs (seed-aware with several seeds)", fontsize=9)  # fmt: skip
    fig.tight_layout()
    return _save(fig, path)


def format_trial_summary(result: Mapping[str, Any]) -> str:
    """The summary printed at the end of ``python -m monai_fair trial``."""
    lines = [f"fairness trial: {result['out']}"]
    lines.append(
        f"  runs: {len(result['runs'])} ({len(result['executed'])} executed now, {len(result['failed'])} failed); "
        f"wall {result['wall_s']:.1f} s, of which runs {result['runs_wall_s']:.1f} s, trial overhead "
        f"{result['overhead_s']:.1f} s"
        + (f" ({100 * result['overhead_fraction']:.1f} %)" if result.get("overhead_fraction") is not None else "")
    )
    for key, msg in result["failed"].items():
        lines.append(f"  FAILED {key}: {msg.splitlines()[0]}")
    if result.get("busy"):
        lines.append(
            f"  left to another live process (its lock is held, e.g. by an earlier trial's run still writing): "
            f"{', '.join(result['busy'])}"
        )
    rep = result.get("report")
    if rep:
        data = json.loads(Path(rep["json"]).read_text())
        for r in data["headline"]:
            if r["verdict"] != "no evidence":
                c = r.get("ci") or [None, None]
                lines.append(
                    f"  {r['arm']}: {r['verdict']} {r['figure']} by {_fmt(r.get('difference'))} "
                    f"[{_fmt(c[0])}, {_fmt(c[1])}] (Holm p={_fmt(r.get('p_holm'), 4)})"
                )
        n_none = sum(r["verdict"] == "no evidence" for r in data["headline"])
        lines.append(f"  {n_none} of {len(data['headline'])} headline comparisons: no evidence of a difference")
        lines.append(f"  report: {rep['md']}")
    return "\n".join(lines)
