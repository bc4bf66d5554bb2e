# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Report writer of an APPLE evaluation: the deployed segmentor alone (before) vs with the trained perturber (after).

Headline (the paper's claim, fairness of segmentation quality across groups): the worst-group Dice, the Dice gap and
ES-Dice of APPLE **paired with the deployed model on the same test cases** (:func:`paired_with_deployed`, a paired
bootstrap of the per-image Dice of both, :func:`monai_fair.metrics.compare_models`: difference, interval, p-value,
Holm-corrected verdict). Secondary: the two fairness reports (``report.json`` written by
:class:`monai_fair.handlers.FairnessReportHandler`), before, after and ``after - before`` per aggregated metric, and
the privacy probe (:func:`monai_fair.methods.apple.run_privacy_probe`, a stricter figure no source of the paper
uses), whose rows (``probe/<kind>/<metric>``) carry their bootstrap intervals (``before_ci``, ``after_ci``). Only
aggregates are written (suppressed groups stay suppressed). Plain functions called from the evaluation config's
``run`` list, not Ignite handlers.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai_fair.utils.serialization import to_json_safe

__all__ = ["write_apple_comparison", "paired_with_deployed", "HEADLINE_FIGURES"]

#: the paper's figures, the headline of every APPLE comparison (fairness of segmentation quality across groups)
HEADLINE_FIGURES = ("worst_group_dice", "dice_gap", "es_dice", "dice")

_FAIRNESS_KEYS = ("es_dice", "es_iou", "dice_gap", "iou_gap", "worst_group_dice", "ser")


def _read(folder: str | os.PathLike) -> dict[str, Any]:
    path = Path(folder) / "report.json"
    if not path.is_file():
        raise FileNotFoundError(f"no fairness report at {path}; run the evaluator with FairnessReportHandler first.")
    return json.loads(path.read_text())


def _num(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and v is not None else float("nan")


def _per_image(
    path: str | os.PathLike, group_names: Sequence[str]
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """``(case ids, dice, iou, group ids)`` of a segmentation predictions CSV
    (:class:`monai_fair.handlers.PredictionsWriter`; its ``group`` column holds the group names)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no predictions file at {path}; run the evaluator with PredictionsWriter first.")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    missing = [c for c in ("case_id", "dice", "iou", "group") if rows and c not in rows[0]]
    if not rows or missing:
        raise ValueError(f"{path}: a segmentation predictions CSV with case_id, dice, iou and group is needed.")
    ids = [r["case_id"] for r in rows]
    num = lambda c: np.array([float(r[c]) for r in rows])  # noqa: E731
    index = {str(n): i for i, n in enumerate(group_names)}
    unknown = sorted({r["group"] for r in rows} - set(index))
    if unknown:
        raise ValueError(f"{path}: groups {unknown} are not among the datalist's groups {list(group_names)}.")
    return ids, num("dice"), num("iou"), np.array([index[r["group"]] for r in rows])


def paired_with_deployed(
    deployed_csv: str | os.PathLike,
    apple_csv: str | os.PathLike,
    group_names: Sequence[str],
    min_group_size: int = 10,
    n_bootstrap: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """APPLE against its own deployed model on the same cases: the paired comparison of
    :func:`monai_fair.metrics.compare_models` (``other`` = APPLE, ``base`` = deployed; per-image Dice/IoU), with the
    :data:`HEADLINE_FIGURES` first under ``"headline"``.

    Raises:
        ValueError: the two files do not hold the same cases in the same order.
    """
    from monai_fair.metrics.comparison import compare_models

    ids_b, dice_b, iou_b, group = _per_image(deployed_csv, group_names)
    ids_a, dice_a, iou_a, group_a = _per_image(apple_csv, group_names)
    if ids_b != ids_a or not np.array_equal(group, group_a):
        raise ValueError(f"{deployed_csv} and {apple_csv} do not hold the same cases in the same order.")
    result = compare_models(
        None, group, dice_b, dice_a, task="segmentation", base_iou=iou_b, other_iou=iou_a,
        num_groups=len(group_names), group_names=list(group_names), min_group_size=min_group_size,
        n_bootstrap=n_bootstrap, seed=seed, alpha=alpha,
    )  # fmt: skip
    keep = ("base", "other", "difference", "ci", "ci_method", "p_value", "p_holm", "verdict", "direction")
    headline = {}
    for fig in HEADLINE_FIGURES:
        entry = next((f for f in result["figures"] if f["figure"] == fig and f["scope"] != "group"), None)
        if entry is not None:
            headline[fig] = {k: entry.get(k) for k in keep}
    return {"headline": headline, "comparison": result}


def write_apple_comparison(
    before_dir: str | os.PathLike,
    after_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    probe: dict[str, Any] | None = None,
    paired: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write and return ``{"metric": {"before": b, "after": a, "change": a - b}}`` for the overall Dice/IoU,
    each reported group's Dice/IoU, the segmentation fairness metrics (ES-Dice, gaps, SER, worst group) and, with
    ``probe``, ``probe/<kind>/auc`` and ``probe/<kind>/balanced_accuracy`` (plus ``before_ci`` / ``after_ci``).

    Args:
        before_dir, after_dir: folders holding the two ``report.json``.
        out_dir: where ``apple_comparison.json`` / ``.md`` are written.
        probe: the result of :func:`monai_fair.methods.apple.run_privacy_probe` (its ``protocol`` is copied).
        paired: the result of :func:`paired_with_deployed`: written first, as the headline (``"headline"``), with
            the whole paired comparison under ``"paired_comparison"``.
    """
    before, after = _read(before_dir), _read(after_dir)
    rows: dict[str, dict[str, float]] = {}

    def add(name: str, b: Any, a: Any) -> None:
        b, a = _num(b), _num(a)
        rows[name] = {"before": b, "after": a, "change": a - b}

    for m in ("dice", "iou"):
        add(f"overall/{m}", before["overall"].get(m), after["overall"].get(m))
    for g in sorted(set(before.get("groups", {})) & set(after.get("groups", {}))):
        for m in ("dice", "iou"):
            add(f"{g}/{m}", before["groups"][g].get(m), after["groups"][g].get(m))
    for k in _FAIRNESS_KEYS:
        add(k, before["fairness"].get(k), after["fairness"].get(k))
    for kind in sorted(set((probe or {}).get("before", {})) & set((probe or {}).get("after", {}))):
        b, a = probe["before"][kind], probe["after"][kind]
        for m in ("auc", "balanced_accuracy"):
            name = f"probe/{kind}/{m}"
            add(name, b.get(m), a.get(m))
            for stage, res in (("before_ci", b), ("after_ci", a)):
                if "ci" in res:
                    rows[name][stage] = [_num(v) for v in res["ci"][m]]
            if "ci_method" in a:
                rows[name]["ci_method"] = a["ci_method"][m]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {}
    if paired:
        payload["headline"] = paired["headline"]
        payload["paired_comparison"] = paired["comparison"]
    payload.update(rows)
    if probe and "protocol" in probe:
        payload["probe_protocol"] = probe["protocol"]
    (out / "apple_comparison.json").write_text(json.dumps(to_json_safe(payload), indent=2, allow_nan=False))
    (out / "apple_comparison.md").write_text(_markdown(rows, probe, paired))
    return payload


def _fmt(v: float, ci: list[float] | None = None) -> str:
    if math.isnan(v):
        return "n/a"
    return f"{v:.4f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _markdown(rows: dict[str, dict[str, Any]], probe: dict[str, Any] | None, paired: dict[str, Any] | None) -> str:
    lines = ["# APPLE: deployed segmentor alone (before) vs with the latent perturber (after)", ""]
    if paired:
        c = paired["comparison"]
        lines += [
            "## Headline: APPLE paired with its deployed model (test split)",
            "",
            "| figure | deployed | APPLE | difference | CI | p | p (Holm) | verdict |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for fig, h in paired["headline"].items():
            ci = h.get("ci") or [None, None]
            cells = [_fmt(_num(h.get(k))) for k in ("base", "other", "difference")]
            lines.append(
                f"| {fig} | {' | '.join(cells)} | [{_fmt(_num(ci[0]))}, {_fmt(_num(ci[1]))}] | "
                f"{_fmt(_num(h.get('p_value')))} | {_fmt(_num(h.get('p_holm')))} | {h.get('verdict')} |"
            )
        lines += ["", f"Intervals: {c.get('estimator', 'paired bootstrap')} ({c['ci_level']:.0%}, "
                  f"{c['n_bootstrap']} replicates, {c['n_cases']} cases); Holm over every figure of the comparison.",
                  "", "## Every aggregate (secondary)", ""]  # fmt: skip
    lines += ["| metric | before | after | change |", "|---|---|---|---|"]
    lines += [
        f"| {k} | {_fmt(v['before'], v.get('before_ci'))} | {_fmt(v['after'], v.get('after_ci'))} | "
        f"{_fmt(v['change'])} |"
        for k, v in rows.items()
    ]
    if probe and "protocol" in probe:
        p = probe["protocol"]
        methods = sorted({f"{k.split('/')[-1]}: {v['ci_method']}" for k, v in rows.items() if "ci_method" in v})
        lines += [
            "",
            f"Privacy probe: fresh {' and '.join(p['kinds'])} probes fitted on the {p['fit']} and scored on the "
            f"{p['score']} ({p['features']}; {p['loss']}); {p['ci']}"
            + (f" ({'; '.join(methods)})" if methods else "")
            + ". AUC 0.5 / balanced accuracy 1/K is chance: the group is not recoverable from what the decoder sees.",
        ]
    return "\n".join(lines) + "\n"
