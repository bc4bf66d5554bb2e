# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""``python -m monai_fair compare`` with several prediction files (training seeds) per side: the method claim.

With several seeds on a side, :func:`monai_fair.metrics.compare_models` makes the **seed-aware** interval and test
(:mod:`monai_fair.metrics.seeds`: between-seed variance plus the shared test-set variance) the primary ones: the
verdicts and Holm's correction use them. This module adds to the compare report what a reader of a method claim
needs: which seed pairing was used, the seed-aware and the conditional ("these trained models on this test set")
interval side by side, and the smallest method effect the design could detect.

Seeds pair (``--seed-pairing paired``) only when seed ``i`` of both models fixed a shared initialisation and data
order (e.g. two checkpoints or post-processings of the same training run); otherwise they are independent samples
(the default, valid either way).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

__all__ = ["add_seed_compare_args", "seed_compare_lines", "PAIRING_TEXT"]

#: how each pairing is described in a report
PAIRING_TEXT = {
    "independent": "independent seeds (the arms' runs share nothing but the test set)",
    "paired": "paired seeds (seed i of both sides shares its initialisation and data order)",
}
_HEAD = ("auc", "worst_group_auc", "auc_gap", "es_auc", "accuracy", "worst_group_accuracy", "eodds", "dice",
         "worst_group_dice", "dice_gap", "es_dice")  # fmt: skip


def add_seed_compare_args(p: argparse.ArgumentParser) -> None:
    """``--seed-pairing`` of ``compare``."""
    p.add_argument(
        "--seed-pairing",
        dest="seed_pairing",
        choices=["independent", "paired"],
        default="independent",
        help="with several CSVs per side: 'independent' seeds (default) or 'paired' (the i-th files of every "
        "side share their initialisation and data order, e.g. the same training run)",
    )


def _f(v: Any, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:+.{digits}f}" if isinstance(v, float) else str(v)


def seed_compare_lines(result: Mapping[str, Any]) -> list[str]:
    """Markdown lines of the seed-aware section of ``compare.md`` (empty when no comparison has several seeds)."""
    lines: list[str] = []
    for c in result.get("comparisons", []):
        sa = c.get("seed_aware")
        if not sa:
            continue
        ns = c.get("n_seeds", {})
        lines += [
            "",
            f"## Method claim: {c['other']} vs {result['base']} (seed-aware)",
            "",
            f"Seeds: {ns.get('base')} vs {ns.get('other')}; pairing used: {PAIRING_TEXT[sa['pairing']]}. "
            "The CI, p-value and verdict above are **seed-aware** (training randomness and test-set sampling): "
            f"{sa['estimator']}." + (f" Note: {sa['note']}." if sa.get("note") else ""),
            "The conditional interval (secondary) covers only the test-set sampling of these trained models.",
            "",
            "| figure | difference | seed-aware CI | p | verdict | conditional CI (secondary) | conditional p | "
            "smallest detectable effect (80 % power) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for f in c["figures"]:
            if f["scope"] == "group" or f["figure"] not in _HEAD:
                continue
            ci = f.get("ci") or [None, None]
            cond = f.get("conditional") or {}
            cc = cond.get("ci") or [None, None]
            lines.append(
                f"| {f['figure']} | {_f(f['difference'])} | [{_f(ci[0])}, {_f(ci[1])}] | {_f(f.get('p_value'), 4)} | "
                f"{f['verdict']} | [{_f(cc[0])}, {_f(cc[1])}] | {_f(cond.get('p_value'), 4)} | "
                f"{_f(f.get('detectable_effect'))} |"
            )
    return lines
