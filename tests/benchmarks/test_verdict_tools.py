# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The small pure parts of ``benchmarks/verdict_changes.py`` and ``benchmarks/nc_settle.py``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_verdict_changes_lists_changed_verdicts_only():
    vc = _load("verdict_changes")
    old = {
        "classification/shortcut": {
            "headline": [
                {"arm": "a", "figure": "eodds", "difference": -0.12, "ci": [-0.2, -0.05], "verdict": "improves"},
                {"arm": "b", "figure": "eodds", "difference": -0.7, "ci": [-0.8, -0.6], "verdict": "improves"},
                {"arm": "c", "figure": "auc", "difference": 0.01, "ci": None, "verdict": "no evidence"},
            ]
        }
    }
    new = {
        "classification/shortcut": {
            "headline": [
                {"arm": "a", "figure": "eodds", "difference": -0.10, "ci": [-0.3, 0.06], "verdict": "no evidence"},
                {"arm": "b", "figure": "eodds", "difference": -0.75, "ci": [-0.9, -0.6], "verdict": "improves"},
                {"arm": "d", "figure": "auc", "difference": 0.0, "ci": [0.0, 0.0], "verdict": "no evidence"},
            ]
        }
    }
    rows = vc.changes(old, new)
    want = "| classification/shortcut | a | eodds | -0.120 [-0.200, -0.050] ▲ | -0.100 [-0.300, +0.060] – | yes |"
    assert rows == [want]
    assert len(vc.changes(old, new, show_all=True)) == 2  # d has no old verdict: not listed


def test_nc_settle_finds_group_and_overall_rows():
    nc = _load("nc_settle")
    comp = {
        "figures": [
            {"figure": "f1", "scope": "overall", "group_name": None, "difference": -0.1},
            {"figure": "f1", "scope": "group", "group_name": "M", "difference": -0.02},
            {"figure": "tpr", "scope": "group", "group_name": "M", "difference": 0.0},
        ]
    }
    assert nc._row(comp, "M", "f1")["difference"] == -0.02
    assert nc._row(comp, "overall", "f1")["difference"] == -0.1
    assert nc._row(comp, "F", "f1") is None
