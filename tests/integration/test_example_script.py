# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""examples/fair_training_ignite.py (the script docs/integration.md walks through) runs and its numbers agree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.slow]

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "fair_training_ignite.py"


def test_example_script(tmp_path):
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--out",
        str(tmp_path / "run"),
        "--n-samples",
        "200",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--min-group-size",
        "1",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    summary = json.loads(proc.stdout[proc.stdout.index("{") :])
    report = json.loads((tmp_path / "run" / "eval" / "report.json").read_text())
    assert (tmp_path / "run" / "models" / "model.pt").is_file()
    # one epoch: the report (evaluator, end of epoch 1) and the plain loop (same final weights) see the same model
    for key in ("auc_gap", "worst_group_auc"):
        a, b = (float("nan") if v is None else float(v) for v in (report["fairness"][key], summary[key]))
        np.testing.assert_allclose(a, b, atol=1e-5, equal_nan=True, err_msg=key)
    assert report["overall"]["n"] == len(
        json.loads((tmp_path / "run" / "data" / "datalist.json").read_text())["validation"]
    )
