# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Suppression grep on real bundle runs: a datalist whose second group has 3-4 cases per split (below the default
``min_group_size`` 10). Every file the run writes (logs, metrics.csv, TensorBoard events, JSON, Markdown, PNG
metadata) and its console output are scanned (:func:`tests.privacy.leaks.find_leaks`): the small group must not be
named, and, since only two groups exist, no group-level figure or per-group entry may appear (overall minus the
other group would reveal the small one)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_bundle_cli
from tests.privacy.leaks import find_leaks, output_files, small_group_datalist

pytestmark = [pytest.mark.slow]

FIXTURES = Path(__file__).resolve().parents[1] / "integration" / "fixtures"
OVERLAYS = Path(__file__).resolve().parents[2] / "bundles" / "overlays"


def _report(leaks: list[str]) -> str:
    return f"{len(leaks)} leak(s):\n" + "\n".join(leaks[:40])


def test_baseline_bundle_train_evaluate_no_leak(bundle_copy, tmp_path):
    root = bundle_copy("baseline_classification")
    datalist, counts = small_group_datalist(tmp_path / "data")
    ov = {
        "datalist": str(datalist),
        "dataset_dir": str(tmp_path / "data"),
        "epochs": 1,
        "batch_size": 16,
        "spatial_size": [32, 32],
    }
    out = [run_bundle_cli(root, ["train.json"], ov), run_bundle_cli(root, ["train.json", "evaluate.json"], ov)]
    rep = json.loads((root / "eval" / "report.json").read_text())
    assert rep["overall"]["n"] == 14 and rep["suppressed_groups"] == 2  # the fixture's test split was evaluated
    assert (root / "eval" / "fairness_card.md").is_file()
    leaks = find_leaks(output_files(root), counts.values(), out)
    assert not leaks, _report(leaks)


def test_overlay_on_zoo_bundle_no_leak(tmp_path):
    datalist, counts = small_group_datalist(tmp_path / "data", file_format="nifti")
    bundle = tmp_path / "zoo_classification"
    shutil.copytree(FIXTURES / "zoo_classification", bundle)
    overlay = str(OVERLAYS / "fairness_classification.json")
    ov = {
        "data_list_file_path": str(datalist),
        "dataset_dir": str(datalist.parent),
        "fair_datalist": str(datalist),
        "train#trainer#max_epochs": 1,
    }
    out = [run_bundle_cli(bundle, ["train.json", overlay], ov)]  # training with validation: metrics, TB, report
    rep = json.loads((bundle / "eval" / "fairness" / "report.json").read_text())
    assert rep["overall"]["n"] == 14 and rep["suppressed_groups"] == 2  # the fixture's validation split
    leaks = find_leaks(output_files(bundle), counts.values(), out)
    assert not leaks, _report(leaks)


def test_neural_collapse_bundle_no_leak(bundle_copy, tmp_path):
    root = bundle_copy("neural_collapse_classification")
    datalist, counts = small_group_datalist(tmp_path / "data")
    ov = {"datalist": str(datalist), "dataset_dir": str(tmp_path / "data"), "epochs": 1, "nc_num_evals": 1}
    out = [run_bundle_cli(root, ["train.json"], {**ov, "batch_size": 16})]
    assert (root / "eval" / "neural_collapse" / "nc_trajectory.json").is_file()
    leaks = find_leaks(output_files(root), counts.values(), out)
    assert not leaks, _report(leaks)
