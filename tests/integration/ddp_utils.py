# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Shared pieces of the torchrun (gloo, 2 CPU processes) bundle tests: running a bundle, and checking that the DDP
validation's fairness report and metrics equal those of a single-process evaluation on the same data."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2"]
BUNDLE_RUN = ["-m", "monai.bundle", "run", "--config_file"]


def copy_bundle(name: str, tmp_path: Path) -> Path:
    bundle = tmp_path / name
    shutil.copytree(REPO / "bundles" / name, bundle, ignore=shutil.ignore_patterns("models", "eval", "data", "runs"))
    return bundle


def run(cmd: list[str], cwd: Path) -> str:
    """Run ``cmd`` (10 min limit); fail with the end of its output unless it succeeds; return its stdout."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=ENV, cwd=str(cwd))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    return proc.stdout


def bundle_run(config_files: Iterable[Path | str], args: list[str], cwd: Path, distributed: bool = False) -> str:
    """``python -m monai.bundle run`` (or under torchrun with 2 processes) of the merged ``config_files``."""
    launcher = TORCHRUN if distributed else [sys.executable]
    return run(launcher + BUNDLE_RUN + [json.dumps([str(f) for f in config_files])] + args, cwd)


def write_ddp_outputs(path: Path, handlers_id: str, task: str) -> Path:
    """An overlay adding, under ``$@output_dir/ddp``, the fairness report (every rank runs it: it is collective)
    and the validation metrics (``MetricsSaver``) to the handler list ``handlers_id`` (merged with ``+``)."""
    path.write_text(
        json.dumps(
            {
                f"+{handlers_id}": [
                    {
                        "_target_": "monai_fair.handlers.FairnessReportHandler",
                        "output_dir": "$@output_dir + '/ddp'",
                        "task": task,
                        "group_names": "@group_names",
                        "min_group_size": 1,
                        "plots": False,
                    },
                    {"_target_": "MetricsSaver", "save_dir": "$@output_dir + '/ddp'", "metrics": "*"},
                ]
            }
        )
    )
    return path


def read_metrics(path: Path) -> dict[str, float]:
    with open(path) as f:
        return {row[0]: float(row[1]) for row in csv.reader(f, delimiter=",") if len(row) >= 2}


def point_estimates(report: dict) -> dict:
    def strip(d):
        return {k: strip(v) for k, v in d.items() if k != "ci"} if isinstance(d, dict) else d

    return {k: strip(report[k]) for k in ("overall", "groups", "fairness")}


def floats(d) -> Iterator[float]:
    if isinstance(d, dict):
        for k in sorted(d):
            yield from floats(d[k])
    elif isinstance(d, (int, float)) or d is None:
        yield float("nan") if d is None else d


def assert_ddp_matches_single(ddp_dir: Path, single_dir: Path, n_val: int, required_metrics: set[str]) -> None:
    """The DDP report covers every validation sample once (both shards gathered, none duplicated), and its point
    estimates and saved metrics equal the single-process ones to 1e-5 (bootstrap intervals depend on the sample
    order and are not compared)."""
    ddp = json.loads((ddp_dir / "report.json").read_text())
    single = json.loads((single_dir / "report.json").read_text())
    assert ddp["overall"]["n"] == single["overall"]["n"] == n_val
    a, b = point_estimates(ddp), point_estimates(single)
    assert a.keys() == b.keys()
    for part in a:
        va, vb = list(floats(a[part])), list(floats(b[part]))
        assert len(va) == len(vb) > 0, part
        np.testing.assert_allclose(va, vb, atol=1e-5, equal_nan=True, err_msg=part)
    m_ddp, m_single = read_metrics(ddp_dir / "metrics.csv"), read_metrics(single_dir / "metrics.csv")
    # evaluate.json names its figures after the split scored (validation_*); the training run's validation: val_*
    m_single = {
        ("val_" + k[len("validation_") :] if k.startswith("validation_") else k): v for k, v in m_single.items()
    }
    keys = sorted(set(m_ddp) & set(m_single))
    assert required_metrics <= set(keys), (m_ddp, m_single)
    for key in keys:
        np.testing.assert_allclose(m_ddp[key], m_single[key], atol=1e-5, err_msg=key)
