# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Report writer of an APPLE evaluation: the deployed segmentor alone (before) vs with the trained perturber (after).

Reads the two fairness reports (``report.json`` written by :class:`monai_fair.handlers.FairnessReportHandler`) and
the privacy probe (:func:`monai_fair.methods.apple.run_privacy_probe`), and writes ``apple_comparison.json`` and
``apple_comparison.md`` with, for each aggregated metric, the value before, after and the change
``after - before``; probe rows (``probe/<kind>/<metric>``) carry their bootstrap intervals (``before_ci``,
``after_ci``). Only aggregates are written (suppressed groups stay suppressed). A plain function called from the
evaluation config's ``run`` list, not an Ignite handler.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from monai_fair.utils.serialization import to_json_safe

__all__ = ["write_apple_comparison"]

_FAIRNESS_KEYS = ("es_dice", "es_iou", "dice_gap", "iou_gap", "worst_group_dice", "ser")


def _read(folder: str | os.PathLike) -> dict[str, Any]:
    path = Path(folder) / "report.json"
    if not path.is_file():
        raise FileNotFoundError(f"no fairness report at {path}; run the evaluator with FairnessReportHandler first.")
    return json.loads(path.read_text())


def _num(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and v is not None else float("nan")


def write_apple_comparison(
    before_dir: str | os.PathLike,
    after_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    probe: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write and return ``{"metric": {"before": b, "after": a, "change": a - b}}`` for the overall Dice/IoU,
    each reported group's Dice/IoU, the segmentation fairness metrics (ES-Dice, gaps, SER, worst group) and, with
    ``probe``, ``probe/<kind>/auc`` and ``probe/<kind>/balanced_accuracy`` (plus ``before_ci`` / ``after_ci``).

    Args:
        before_dir, after_dir: folders holding the two ``report.json``.
        out_dir: where ``apple_comparison.json`` / ``.md`` are written.
        probe: the result of :func:`monai_fair.methods.apple.run_privacy_probe` (its ``protocol`` is copied).
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
    payload: dict[str, Any] = dict(rows)
    if probe and "protocol" in probe:
        payload["probe_protocol"] = probe["protocol"]
    (out / "apple_comparison.json").write_text(json.dumps(to_json_safe(payload), indent=2, allow_nan=False))
    (out / "apple_comparison.md").write_text(_markdown(rows, probe))
    return payload


def _fmt(v: float, ci: list[float] | None = None) -> str:
    if math.isnan(v):
        return "n/a"
    return f"{v:.4f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _markdown(rows: dict[str, dict[str, Any]], probe: dict[str, Any] | None) -> str:
    lines = [
        "# APPLE: deployed segmentor alone (before) vs with the latent perturber (after)",
        "",
        "| metric | before | after | change |",
        "|---|---|---|---|",
    ]
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
