# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The README's quick start, run as written on data in the real formats: datalist -> check -> train -> evaluate ->
inference -> report, for 2D classification (non-square RGB JPEGs, empty ages, ``unknown`` sex) and 3D segmentation
(NIfTI volumes larger than the patch). The commands are read from README.md's fenced blocks, so the two cannot drift;
the only additions are the tiny-size overrides below."""

from __future__ import annotations

import csv
import json
import logging
import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest

from monai_fair.__main__ import main
from tests.conftest import BUNDLES_DIR, REPO_ROOT
from tests.data.fixtures import write_dicom_cases, write_jpeg_cases, write_volume_cases

#: appended to every `python -m monai.bundle run` of a block: CPU-test sizes, nothing else
TINY = {
    "baseline_classification": ["--epochs", "1", "--spatial_size", "[32,32]", "--batch_size", "16"],
    "baseline_segmentation": ["--epochs", "1", "--patch_size", "[16,16,16]", "--num_samples", "1"],
}


def readme_blocks() -> list[list[str]]:
    """The commands of each fenced bash block of README.md's quick-start section (comments dropped)."""
    text = (REPO_ROOT / "README.md").read_text()
    section = text[text.index("## Quick start on your own data") :]
    section = section[: section.index("\n## ", 3)]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    return [
        [ln.strip() for ln in b.replace("\\\n", " ").splitlines() if ln.strip() and not ln.startswith("#")]
        for b in blocks
    ]


def _handlers() -> dict:
    loggers = [logging.root] + [v for v in logging.Logger.manager.loggerDict.values() if isinstance(v, logging.Logger)]
    return {lg: list(lg.handlers) for lg in loggers}


def run_bundle(args: list[str]) -> None:
    """``python -m monai.bundle run ARGS`` in-process: MONAI's CLI is ``fire`` over ``monai.bundle.scripts``."""
    import fire
    from monai.bundle import scripts

    before = _handlers()
    for hs in before.values():  # handlers MONAI bound to an earlier test's (now closed) captured stream
        for h in hs:
            if isinstance(h, logging.StreamHandler) and getattr(h.stream, "closed", False):
                h.stream = sys.stderr  # not setStream: it would flush the closed stream
    try:
        fire.Fire(scripts.run, command=list(args), name="monai.bundle run")
    finally:  # handlers the run added are bound to this test's captured stdout: remove them
        for lg, hs in _handlers().items():
            lg.handlers = [h for h in hs if h in before.get(lg, ())]


def run_block(commands: list[str], cwd: Path, monkeypatch, capfd) -> None:
    """Run README commands in ``cwd``, in-process through the same entry points (``monai_fair.__main__.main`` and
    :func:`run_bundle`), saving an interpreter start per command."""
    monkeypatch.chdir(cwd)
    for cmd in commands:
        argv = shlex.split(cmd)
        assert argv[:2] == ["python", "-m"], cmd
        if argv[2] == "monai_fair":
            assert main(argv[3:]) == 0, cmd
            continue
        assert argv[2:4] == ["monai.bundle", "run"], cmd
        bundle = next(name for name in TINY if f"bundles/{name}" in cmd)
        run_bundle([*argv[4:], *TINY[bundle]])
        out = "".join(capfd.readouterr())
        assert "Traceback" not in out and "ERROR" not in out, out[-4000:]


def copy_bundles(dst: Path) -> None:
    for name in TINY:
        ignore = shutil.ignore_patterns("models", "eval", "data", "runs")
        shutil.copytree(BUNDLES_DIR / name, dst / "bundles" / name, ignore=ignore)


def test_readme_has_the_tested_blocks():
    blocks = readme_blocks()
    assert [len(b) for b in blocks] == [6, 1, 6]
    assert "--dicom-dir" in blocks[1][0] and "--spatial_dims 3" in blocks[2][2] and "--datalist" in blocks[0][2]
    for block in blocks:  # bundle runs take no flag beyond --datalist (and --spatial_dims 3 for 3D)
        for cmd in block:
            if "monai.bundle" in cmd:
                flags = {a for a in shlex.split(cmd) if a.startswith("--")}
                assert flags <= {"--config_file", "--bundle_root", "--datalist", "--spatial_dims"}, cmd


@pytest.mark.slow
def test_quickstart_classification_on_jpegs(tmp_path, monkeypatch, capfd):
    write_jpeg_cases(tmp_path, n=96)
    copy_bundles(tmp_path)
    printed = []
    monkeypatch.setattr("builtins.print", lambda *a, **k: printed.append(" ".join(map(str, a))))
    run_block(readme_blocks()[0], tmp_path, monkeypatch, capfd)
    printed = "\n".join(printed)
    assert "F|0-40" in printed and "unknown" in printed and "OK (classification)" in printed
    bundle = tmp_path / "bundles" / "baseline_classification"
    assert (bundle / "models" / "model.pt").is_file() and (bundle / "eval" / "report.json").is_file()
    metrics = (bundle / "eval" / "metrics.csv").read_text()
    assert "test_auc" in metrics and "val_auc" not in metrics
    with (bundle / "eval" / "predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["case_id", "image", "prob_no", "prob_yes", "pred", "label", "group", "patient_id"]
    data = json.loads((tmp_path / "datalist.json").read_text())
    assert len(rows) == len(data["test"]) and {r["group"] for r in rows} == set(data["group_names"])
    assert (tmp_path / "report" / "report.json").is_file() and (tmp_path / "report" / "report.md").is_file()


@pytest.mark.slow
def test_quickstart_classification_on_grayscale_dicom_of_mixed_sizes(tmp_path, monkeypatch, capfd):
    """Demographics only in the DICOM headers; 1-channel images of 3 sizes into the 3-channel, fixed-size network."""
    write_dicom_cases(tmp_path)
    copy_bundles(tmp_path)
    blocks = readme_blocks()
    run_block(blocks[1] + blocks[0][1:], tmp_path, monkeypatch, capfd)
    data = json.loads((tmp_path / "datalist.json").read_text())
    assert data["group_names"] == ["F|0-60", "F|>=60", "M|0-60", "M|>=60"] and data["source"]["type"] == "dicom"
    bundle = tmp_path / "bundles" / "baseline_classification"
    with (bundle / "eval" / "predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[2:4] == ["prob_normal", "prob_abnormal"] and rows[0]["patient_id"].startswith("PAT")
    assert (tmp_path / "report" / "report.json").is_file()


@pytest.mark.slow
def test_quickstart_3d_segmentation_on_nifti(tmp_path, monkeypatch, capfd):
    write_volume_cases(tmp_path, n=12, table="volumes.csv")
    copy_bundles(tmp_path)
    run_block(readme_blocks()[2], tmp_path, monkeypatch, capfd)
    bundle = tmp_path / "bundles" / "baseline_segmentation"
    assert (bundle / "models" / "model.pt").is_file() and (bundle / "eval" / "report.json").is_file()
    assert "test_mean_dice" in (bundle / "eval" / "metrics.csv").read_text()
    with (bundle / "eval" / "predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["case_id", "image", "dice", "iou", "pred", "label", "group"]
    assert all(Path(r["pred"]).is_file() for r in rows)  # sliding-window masks, saved as NIfTI
    import nibabel as nib

    assert nib.load(rows[0]["pred"]).shape == nib.load(rows[0]["image"]).shape == (24, 20, 16)  # whole volume
    assert json.loads((tmp_path / "report3d" / "report.json").read_text())["task"] == "segmentation"  # detected
