# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""``--tracking mlflow`` on the baseline bundle (local sqlite tracking URI): training and evaluation runs end
FINISHED, the evaluation logs the fairness report and card as artifacts and the card's headline figures as
metrics, and no suppressed group reaches MLflow."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import pytest

from monai_fair.data import ensure_synthetic_dataset
from monai_fair.handlers.mlflow_fairness import fairness_headline_metrics, report_artifacts
from tests.conftest import run_bundle_cli

mlflow = pytest.importorskip("mlflow", reason="the `tracking` extra (mlflow) is not installed")

TINY = {"synthetic": {"n_samples": 60, "image_size": 32, "seed": 1}, "epochs": 1, "batch_size": 16}


def test_headline_metrics_from_card():
    card = {
        "data": {"n": 40},
        "groups": {"F": 20, "M": 20},
        "headline": {
            "overall_auc": {"value": 0.8, "ci": [0.7, 0.9], "ci_method": "delong"},
            "auc_gap": {"value": 0.1, "ci": [0.02, 0.2], "verdict": "disparity"},
            "eodds": {"value": None, "ci": None, "verdict": None},  # undefined: not logged
            "es_auc": {"value": 0.7, "ci": None},
        },
    }
    metrics, tags = fairness_headline_metrics(card, prefix="test_")
    assert metrics == {
        "test_overall_auc": 0.8,
        "test_overall_auc_ci_lower": 0.7,
        "test_overall_auc_ci_upper": 0.9,
        "test_auc_gap": 0.1,
        "test_auc_gap_ci_lower": 0.02,
        "test_auc_gap_ci_upper": 0.2,
        "test_es_auc": 0.7,
        "test_n": 40.0,
        "test_groups_reported": 2.0,
    }
    assert tags == {"fairness.verdict.auc_gap": "disparity"}


def test_report_artifacts_only_report_files(tmp_path):
    for name in ("report.json", "report.md", "fairness_card.json", "roc.png", "metrics.csv", "mlruns.db"):
        (tmp_path / name).write_text("x")
    (tmp_path / "mlruns").mkdir()
    (tmp_path / "mlruns" / "a.png").write_text("x")
    assert [p.name for p in report_artifacts(tmp_path)] == ["report.json", "report.md", "fairness_card.json", "roc.png"]


def _runs(uri: str, experiment: str) -> list:
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no MLflow experiment {experiment!r}"
    return client, sorted(client.search_runs([exp.experiment_id]), key=lambda r: r.info.start_time)


@pytest.mark.slow
def test_tracking_mlflow_train_and_evaluate(bundle_copy, tmp_path):
    root = bundle_copy("baseline_classification")
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    # the bundle's own data (made here first, as its initialize does): min_group_size one above the smallest group
    # of the validation and test splits hides that group, and secondary suppression then hides the other one
    datalist = json.loads(Path(ensure_synthetic_dataset(tmp_path / "data", **TINY["synthetic"])).read_text())
    counts = {s: Counter(it["group"] for it in datalist[s]) for s in ("validation", "test")}
    assert all(len(c) == 2 for c in counts.values()), counts
    min_group_size = max(min(c.values()) for c in counts.values()) + 1
    overrides = dict(TINY, dataset_dir=str(tmp_path / "data"), min_group_size=min_group_size, experiment_name="fair")
    track = ["--tracking", "mlflow", "--tracking_uri", uri]
    run_bundle_cli(root, ["train.json"], overrides, extra_args=track)
    run_bundle_cli(root, ["train.json", "evaluate.json"], overrides, extra_args=track)

    client, runs = _runs(uri, "fair")
    assert [r.info.status for r in runs] == ["FINISHED", "FINISHED"]
    train, evaluation = runs
    assert "train_loss" in train.data.metrics

    eval_dir = root / "eval"
    logged = {a.path for a in client.list_artifacts(evaluation.info.run_id, "fairness_report")}
    want = {f"fairness_report/{p.name}" for p in report_artifacts(eval_dir)}
    assert {"fairness_report/report.json", "fairness_report/report.md", "fairness_report/fairness_card.json"} <= want
    assert any(p.endswith(".png") for p in want) and logged == want
    local = client.download_artifacts(evaluation.info.run_id, "fairness_report/report.json", str(tmp_path))
    assert json.loads(open(local).read()) == json.loads((eval_dir / "report.json").read_text())

    # headline figures: exactly the card's finite values (independent read of fairness_card.json)
    card = json.loads((eval_dir / "fairness_card.json").read_text())
    figures = {k: e["value"] for k, e in card["headline"].items() if isinstance(e.get("value"), (int, float))}
    assert figures, card["headline"]
    for key, value in figures.items():
        assert evaluation.data.metrics[f"test_fairness_{key}"] == pytest.approx(value)
    assert evaluation.data.metrics["test_fairness_n"] == card["data"]["n"] == len(datalist["test"])

    # suppression: no group is reported, so no group-level figure and no group name is logged anywhere
    assert card["groups"] == {} and evaluation.data.metrics["test_fairness_groups_reported"] == 0
    for gap in ("auc_gap", "eodds", "demographic_parity", "worst_group_auc"):
        assert f"test_fairness_{gap}" not in evaluation.data.metrics
    for run in runs:
        keys = set(run.data.metrics) | set(run.data.params) | set(run.data.tags)
        for key in keys:
            assert not set(datalist["group_names"]) & set(re.split(r"[_/.]", key)), key
        for name, value in run.data.metrics.items():
            if "worst_group" in name or name.endswith("_gap"):
                assert math.isnan(value), (name, value)
