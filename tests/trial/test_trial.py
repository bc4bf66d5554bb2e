# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""A short fairness trial through the bundles, killed mid-way and resumed; its report has every verdict."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from monai_fair.data import generate_classification_dataset
from monai_fair.trial.arms import ARMS, Arm, resolve_arms
from monai_fair.trial.report import HEADLINE

TINY = {
    "epochs": 2,
    "spatial_size": [16, 16],
    "batch_size": 16,
    "min_group_size": 4,
    "network_def": {
        "_target_": "monai_fair.networks.SmallVGGNet",
        "spatial_dims": 2,
        "in_channels": "@in_channels",
        "num_classes": "@num_classes",
        "channels": [4, 8, 8, 8],
    },
}


def test_resolve_arms():
    arms = resolve_arms(["erm_select_dto", "group_thresholds"], "classification")
    assert [a.name for a in arms] == ["erm", "erm_select_dto", "group_thresholds"]  # reference first
    assert all(a.recipe_name == "erm" for a in arms)
    with pytest.raises(ValueError, match="unknown classification method"):
        resolve_arms(["apple"], "classification")
    with pytest.raises(ValueError, match="no training stages"):
        Arm("x", "classification", "b", "d", "m", "t")
    with pytest.raises(ValueError, match="cannot have its own stages or overrides"):
        Arm("x", "classification", "b", "d", "m", "t", recipe="erm", overrides={"epochs": 2})
    assert {a.task for a in ARMS.values()} == {"classification", "segmentation"}


@pytest.mark.slow
def test_trial_killed_resumed_and_reported(tmp_path, bundles_dir):
    datalist = generate_classification_dataset(
        tmp_path / "data", n_samples=96, image_size=16, file_format="nifti", scenario="shortcut",
        splits=(0.5, 0.25, 0.25), seed=0,
    )  # fmt: skip
    out = tmp_path / "trial"
    args = [sys.executable, "-m", "monai_fair", "trial", "--datalist", str(datalist), "--task", "classification",
            "--methods", "reweighting", "--seeds", "0", "1", "--out", str(out), "--executor", "inprocess",
            "--n-bootstrap", "50", "--min-group-size", "4", "--no-progress",
            "--bundles-dir", str(bundles_dir)]  # fmt: skip
    for k, v in TINY.items():
        args += ["--override", f"{k}={json.dumps(v)}"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    first = out / "runs" / "erm" / "seed_0" / "run.json"
    second = out / "runs" / "erm" / "seed_1"
    t0 = time.time()
    while not (first.is_file() and (second / "log.txt").is_file()) and proc.poll() is None and time.time() - t0 < 300:
        time.sleep(0.2)
    assert proc.poll() is None, "the trial ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # killed while the second run is under way
    proc.wait()
    done_at = first.stat().st_mtime_ns
    assert not (second / "run.json").exists()

    # resumed through the trial bundle (python -m monai.bundle run, in this process)
    from monai.bundle import run as bundle_run

    (tmp_path / "overrides.json").write_text(json.dumps(TINY))
    bundle_run(
        config_file=str(bundles_dir / "fairness_trial" / "configs" / "train.json"),
        bundle_root=str(bundles_dir / "fairness_trial"), datalist=str(datalist), task="classification",
        methods=["reweighting"], seeds=[0, 1], output_dir=str(out), overrides_file=str(tmp_path / "overrides.json"),
        executor="inprocess", n_bootstrap=50, min_group_size=4,
    )  # fmt: skip
    res = json.loads((out / "trial_timing.json").read_text())
    assert not res["failed"], res["failed"]
    assert "erm/seed_0" not in res["executed"] and first.stat().st_mtime_ns == done_at  # not redone
    assert set(res["executed"]) == {"erm/seed_1", "reweighting/seed_0", "reweighting/seed_1"}  # killed run redone
    assert res["overhead_s"] >= 0 and res["runs_wall_s"] > 0
    report = json.loads((out / "report" / "trial_report.json").read_text())
    verdicts = {(r["arm"], r["figure"]): r["verdict"] for r in report["headline"]}
    assert set(verdicts) == {("reweighting", f) for f, _ in HEADLINE["classification"]}
    assert set(verdicts.values()) <= {"improves", "harms", "no evidence"}
    assert not report["missing_runs"]
    for seed in (0, 1):
        for arm in ("erm", "reweighting"):
            assert (out / "report" / "arms" / arm / f"seed_{seed}" / "report.json").is_file()
    md = (out / "report" / "trial_report.md").read_text()
    assert "## Ranked table" in md and "reweighting" in md
    assert (out / "report" / "pareto.png").is_file()
    # the same trial again redoes nothing
    from monai_fair.trial.runner import run_trial

    again = run_trial(datalist, "classification", ["reweighting"], [0, 1], out, bundles_dir=bundles_dir,
                      overrides=TINY, executor="inprocess", progress=False, report=False)  # fmt: skip
    assert again["executed"] == []


def test_plan_fingerprints_and_evaluation_resume(tmp_path, bundles_dir):
    """Training and evaluations have separate fingerprints: adding a selection arm adds an evaluation, not a run."""
    from monai_fair.trial.runner import plan_runs

    datalist = tmp_path / "dl.json"
    datalist.write_text('{"training": [], "validation": [], "test": []}')
    one = plan_runs(resolve_arms(["erm"], "classification"), [0], datalist, tmp_path, bundles_dir)
    two = plan_runs(resolve_arms(["erm_select_dto"], "classification"), [0], datalist, tmp_path, bundles_dir)
    assert len(one) == len(two) == 1 and one[0].fingerprint == two[0].fingerprint
    assert [s.tag for s in one[0].eval_steps] == ["model"]
    assert [s.tag for s in two[0].eval_steps] == ["model", "model_dto"]
    run = two[0]
    run.run_dir.mkdir(parents=True)
    evals = {"model": {"fingerprint": run.eval_steps[0].fingerprint, "wall_s": 1.0}}
    run.write_record({"fingerprint": run.fingerprint, "trained": True, "steps": [], "evals": evals})
    assert run.trained and [s.tag for s in run.pending_evals()] == ["model_dto"] and not run.complete
    other = plan_runs(resolve_arms(["erm"], "classification"), [0], datalist, tmp_path, bundles_dir, {"epochs": 3})
    assert other[0].fingerprint != run.fingerprint  # other overrides: trained again
