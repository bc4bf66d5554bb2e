# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The Ray executor: a local Ray instance on 127.0.0.1 with two CPU workers runs a small trial; a worker killed
mid-run fails only its run, the resume redoes that run and nothing else; predictions and report equal the
in-process trial's."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from tests.trial.test_trial import TINY

ray = pytest.importorskip("ray")


def _headline(out):
    rep = json.loads((out / "report" / "trial_report.json").read_text())
    keys = ("arm", "figure", "difference", "ci", "p_value", "p_holm", "verdict", "conditional", "detectable_effect")
    return [{k: r.get(k) for k in keys} for r in rep["headline"]]


@pytest.mark.slow
def test_ray_trial_equals_inprocess_and_redoes_only_a_killed_run(tmp_path, bundles_dir):
    import torch

    from monai_fair.data import generate_classification_dataset
    from monai_fair.trial.runner import run_trial

    datalist = generate_classification_dataset(
        tmp_path / "data", n_samples=96, image_size=16, file_format="nifti", scenario="shortcut",
        splits=(0.5, 0.25, 0.25), seed=0,
    )  # fmt: skip
    report_options = {"n_bootstrap": 50, "min_group_size": 4, "seed_reports": False, "plots": False}
    common = dict(bundles_dir=bundles_dir, overrides=TINY, progress=False, report_options=report_options)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a one-CPU Ray worker: the same arithmetic
    try:
        ref = run_trial(datalist, "classification", ["reweighting"], [0, 1], tmp_path / "inproc", executor="inprocess",
                        **common)  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert not ref["failed"]

    out = tmp_path / "ray"
    ray_options = {"resources": {"num_cpus": 1}, "step_executor": "inprocess",
                   "ray_init": {"num_cpus": 2, "_node_ip_address": "127.0.0.1"}}  # fmt: skip
    victim = out / "runs" / "reweighting" / "seed_1"
    result: dict = {}

    def first_pass():
        result.update(run_trial(datalist, "classification", ["reweighting"], [0, 1], out, executor="ray",
                                ray_options=ray_options, **common))  # fmt: skip

    th = threading.Thread(target=first_pass)
    th.start()
    lock = victim.parent / ".seed_1.lock"
    t0 = time.time()
    while not ((victim / "log.txt").is_file() and lock.is_file() and lock.read_text().strip()):
        assert th.is_alive() and time.time() - t0 < 300, "the Ray trial never started reweighting/seed_1"
        time.sleep(0.05)
    assert not (victim / "run.json").exists()
    os.kill(int(lock.read_text()), signal.SIGKILL)  # the Ray worker executing reweighting/seed_1
    th.join(300)
    assert set(result["failed"]) == {"reweighting/seed_1"}, result["failed"]
    assert set(result["executed"]) == {"erm/seed_0", "erm/seed_1", "reweighting/seed_0"}
    done = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/seed_*/run.json")}
    assert len(done) == 3

    again = run_trial(datalist, "classification", ["reweighting"], [0, 1], out, executor="ray",
                      ray_options=ray_options, **common)  # fmt: skip
    assert again["executed"] == ["reweighting/seed_1"] and not again["failed"]
    assert all(p.stat().st_mtime_ns == t for p, t in done.items())  # nothing else redone

    for run in ("erm/seed_0", "erm/seed_1", "reweighting/seed_0", "reweighting/seed_1"):
        for split in ("validation", "test"):
            a = (tmp_path / "inproc" / "runs" / run / "predictions" / f"model_{split}.csv").read_text()
            b = (out / "runs" / run / "predictions" / f"model_{split}.csv").read_text()
            assert a == b, f"{run} {split}: Ray and in-process predictions differ"
    assert _headline(out) == _headline(tmp_path / "inproc")
