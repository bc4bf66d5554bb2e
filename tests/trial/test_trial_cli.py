# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The trial's command line and report without training: arms listed, --add-seeds, overrides reported and epochs
reaching every stage, seed-aware verdicts with pairing and planning on written prediction files, ranking, notes,
and a SIGKILLed trial leaving no run behind."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest

from monai_fair.data import generate_classification_dataset, load_fair_datalist
from monai_fair.trial.arms import ARMS, Arm, resolve_arms
from monai_fair.trial.cli import DEFAULT_SEEDS, _seeds, format_arms
from monai_fair.trial.report import _rank_key, seed_pairing, write_trial_report
from monai_fair.trial.runner import epoch_overrides, override_notes, plan_runs


def test_list_arms_and_help(tmp_path):
    (tmp_path / "arms.json").write_text(json.dumps([{
        "name": "my_arm", "task": "classification", "bundle": "baseline_classification",
        "description": "my own loss", "mechanism": "shortcut", "target": "eodds", "recipe": "erm",
        "checkpoint": "model_dto.pt"}]))  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    cmd = [sys.executable, "-m", "monai_fair", "trial"]
    listed = subprocess.run(cmd + ["--list-arms", "--arms-file", str(tmp_path / "arms.json")], env=env,
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    helped = subprocess.run(cmd + ["--help"], env=env, capture_output=True, text=True, check=True).stdout
    for name, arm in ARMS.items():
        assert f"{name} " in listed and arm.description[:40] in listed
        assert f"{name} " in helped
    assert "my_arm" in listed and "my own loss [arms file]" in listed and "my_arm" not in helped
    assert "my_arm" in format_arms({"my_arm": Arm("my_arm", "classification", "b", "d", "m", "t", recipe="erm")})


def test_default_and_added_seeds(tmp_path):
    args = Namespace(seeds=None, add_seeds=0, methods=None, out=str(tmp_path))
    assert _seeds(args) == (list(DEFAULT_SEEDS), None) and len(DEFAULT_SEEDS) == 5
    with pytest.raises(ValueError, match="does not exist"):
        _seeds(Namespace(seeds=None, add_seeds=2, methods=None, out=str(tmp_path)))
    (tmp_path / "trial.json").write_text(json.dumps({"seeds": [0, 1, 2], "arms": [{"name": "erm"}, {"name": "fis"}]}))
    assert _seeds(Namespace(seeds=None, add_seeds=2, methods=None, out=str(tmp_path))) == ([0, 1, 2, 3, 4],
                                                                                           ["erm", "fis"])  # fmt: skip
    with pytest.raises(ValueError, match="not both"):
        _seeds(Namespace(seeds=[5], add_seeds=2, methods=None, out=str(tmp_path)))


def test_epochs_reach_every_fairdi_stage_and_unused_overrides_are_reported(tmp_path, bundles_dir):
    datalist = tmp_path / "dl.json"
    datalist.write_text("{}")
    runs = plan_runs(resolve_arms(["fairdi"], "classification"), [0], datalist, tmp_path, bundles_dir, {"epochs": 1})
    fd = next(r for r in runs if r.recipe.name == "fairdi")
    for step in fd.train_steps:
        assert {step.overrides[k] for k in ("baseline_epochs", "teacher_epochs", "student_epochs")} == {1}
    explicit, _ = epoch_overrides(ARMS["fairdi"], bundles_dir, {"epochs": 1, "teacher_epochs": 3})
    assert "teacher_epochs" not in explicit
    notes = override_notes(resolve_arms(["fairdi", "reweighting"], "classification"), bundles_dir,
                           {"epochs": 1, "no_such_key": 2})  # fmt: skip
    assert any("no_such_key" in n for n in notes["reweighting"])
    assert any("baseline_epochs=1" in n for n in notes["fairdi"])
    assert not any("'epochs' is not used" in n for n in notes["fairdi"])
    (tmp_path / "stage.json").write_text(json.dumps({"lr": 1}))
    odd = Arm("odd", "classification", "x", "d", "m", "t", stages=((str(tmp_path / "stage.json"),),))
    with pytest.raises(ValueError, match="reaches no training stage"):
        epoch_overrides(odd, Path("/"), {"epochs": 2})


def test_rank_key_keeps_zero_above_harm():
    rows = {"zero": {"difference": 0.0}, "harm": {"difference": -0.05}, "missing": {}, "good": {"difference": 0.02}}
    assert sorted(rows, key=lambda a: _rank_key(rows[a])) == ["good", "zero", "harm", "missing"]


def _write_preds(path: Path, ids, scores):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["case_id", "prob_0", "prob_1"])
        w.writerows([c, 1 - s, s] for c, s in zip(ids, scores))


def test_trial_report_is_seed_aware_with_pairing_planning_and_notes(tmp_path):
    datalist = generate_classification_dataset(
        tmp_path / "data", n_samples=240, image_size=16, file_format="nifti", scenario="shortcut",
        splits=(0.2, 0.3, 0.5), seed=0,
    )  # fmt: skip
    out = tmp_path / "trial"
    arms = resolve_arms(["reweighting", "erm_select_dto"], "classification")
    assert seed_pairing(ARMS["erm_select_dto"], ARMS["erm"]) == "paired"
    assert seed_pairing(ARMS["reweighting"], ARMS["erm"]) == "independent"
    rng = np.random.default_rng(0)
    seeds = [0, 1, 2]
    for split in ("validation", "test"):
        items = load_fair_datalist(datalist, split=split)[0]
        ids = [str(it["case_id"]) for it in items]
        y = np.array([int(it["label"]) for it in items])
        for recipe, tags in (("erm", ("model", "model_dto")), ("reweighting", ("model",))):
            for s in seeds:
                quality = rng.normal(1.0, 0.8)  # large seed noise, no method effect
                for tag in tags:
                    logit = quality * (2 * y - 1) + rng.normal(0, 1, y.size)
                    score = 1 / (1 + np.exp(-(logit + 3.0)))  # every score >= 0.5 for most seeds: degenerate
                    _write_preds(out / "runs" / recipe / f"seed_{s}" / "predictions" / f"{tag}_{split}.csv", ids, score)
    for recipe, tags in (("erm", ("model", "model_dto")), ("reweighting", ("model",))):
        for s in seeds:
            rec = {"trained": True, "steps": [{"kind": "train", "wall_s": 2.0, "cpu_s": 1.0 + (recipe == "erm")}],
                   "evals": {t: {"wall_s": 1.0, "cpu_s": 1.0} for t in tags}}  # fmt: skip
            (out / "runs" / recipe / f"seed_{s}" / "run.json").write_text(json.dumps(rec))
    (out / "trial.json").write_text(json.dumps({"override_notes": {"fairdi": ["epochs sets baseline_epochs=1"]}}))
    paths = write_trial_report(out, arms, seeds, "classification", datalist, n_bootstrap=60, min_group_size=4,
                               seed_reports=False, plots=False, tolerance=0.05)  # fmt: skip
    rep = json.loads(Path(paths["json"]).read_text())
    assert rep["seed_pairing"] == {"reweighting": "independent", "erm_select_dto": "paired"}
    for r in rep["headline"]:
        assert r["conditional"]["label"].startswith("conditional")
        assert r["detectable_effect"] is not None and r["detectable_effect"] > 0
        assert "seeds_needed" in r
    auc = next(r for r in rep["headline"] if r["arm"] == "reweighting" and r["figure"] == "auc")
    cond = auc["conditional"]["ci"]
    assert auc["ci"][1] - auc["ci"][0] > cond[1] - cond[0]  # seed variance widens the method interval
    assert any("degenerate" in n for n in rep["notes"]) and "fairdi: epochs sets baseline_epochs=1" in rep["notes"]
    arm_cost = {a["name"]: a["cost_ratio_mean"] for a in rep["arms"]}
    assert arm_cost["reweighting"] == pytest.approx(2.0 / 3.0)  # CPU time: 1 + 1 against ERM's 2 + 1
    md = Path(paths["md"]).read_text()
    assert "Seed pairing used" in md and "conditional CI (secondary)" in md and "seeds per arm for ±0.05" in md


def test_sigkilled_trial_leaves_no_run_alive(tmp_path):
    fake = tmp_path / "fake_python"
    fake.write_text('#!/bin/sh\necho $$ > "$PWD/child.pid"\nexec sleep 120\n')
    fake.chmod(0o755)
    run_dir = tmp_path / "runs" / "erm" / "seed_0"
    driver = (
        "import sys; from pathlib import Path\n"
        "from monai_fair.trial.arms import ARMS\n"
        "from monai_fair.trial.runner import Run, Step, execute_runs\n"
        "run = Run(ARMS['erm'], 0, Path(sys.argv[1]), fingerprint='x')\n"
        "run.steps = [Step('train_0', 'train', [], {'bundle_root': sys.argv[1]})]\n"
        "execute_runs([run], python=sys.argv[2], progress=False)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", driver, str(run_dir), str(fake)], env=env)
    pid_file = run_dir / "child.pid"
    t0 = time.time()
    while not (pid_file.is_file() and pid_file.read_text().strip()):
        assert proc.poll() is None and time.time() - t0 < 120, "the run never started"
        time.sleep(0.05)
    child = int(pid_file.read_text())
    os.kill(proc.pid, signal.SIGKILL)  # the trial only, not its process group
    proc.wait()
    t0 = time.time()
    while _alive(child) and time.time() - t0 < 10:
        time.sleep(0.05)
    assert not _alive(child), "the run outlived the SIGKILLed trial"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.parametrize("bundle", ["baseline_classification", "fairdi_classification", "snnl_pruning_classification"])
def test_small_preset_builds_every_classification_network(bundle, bundles_dir):
    import torch
    from monai.bundle import ConfigParser

    from monai_fair.trial.cli import _preset

    preset = _preset("small", "classification", str(bundles_dir))
    parser = ConfigParser()
    parser.read_config(str(bundles_dir / bundle / "configs" / "train.json"))
    parser.update(preset)
    net = parser.get_parsed_content("network_def", instantiate=True)
    assert type(net).__name__ == "SmallVGGNet" and list(parser["spatial_size"]) == [64, 64]
    assert net(torch.zeros(2, parser["in_channels"], 64, 64)).shape == (2, parser["num_classes"])
    with pytest.raises(ValueError, match="classification only"):
        _preset("small", "segmentation", str(bundles_dir))
