# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Before/after summary of an APPLE evaluation: the deployed segmentor alone vs with the trained perturber.

Reads the two fairness reports (``report.json`` written by :class:`monai_fair.handlers.FairnessReportHandler`)
and writes ``apple_comparison.json`` and ``apple_comparison.md`` with, for each aggregated metric, the value
before, after and the change ``after - before``. Only aggregates are written (suppressed groups stay suppressed).
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
    before_dir: str | os.PathLike, after_dir: str | os.PathLike, out_dir: str | os.PathLike
) -> dict[str, Any]:
    """Write and return ``{"metric": {"before": b, "after": a, "change": a - b}}`` for the overall Dice/IoU,
    each reported group's Dice/IoU and the segmentation fairness metrics (ES-Dice, gaps, SER, worst group)."""
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
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "apple_comparison.json").write_text(json.dumps(to_json_safe(rows), indent=2, allow_nan=False))
    fmt = lambda v: "n/a" if math.isnan(v) else f"{v:.4f}"  # noqa: E731
    lines = [
        "# APPLE: deployed segmentor alone (before) vs with the latent perturber (after)",
        "",
        "| metric | before | after | change |",
        "|---|---|---|---|",
    ]
    lines += [f"| {k} | {fmt(v['before'])} | {fmt(v['after'])} | {fmt(v['change'])} |" for k, v in rows.items()]
    (out / "apple_comparison.md").write_text("\n".join(lines) + "\n")
    return rows
