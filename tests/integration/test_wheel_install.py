# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""What a pip user outside the checkout meets: the sdist and the wheel are built as ``python -m build`` builds them
(sdist first, the wheel from the unpacked sdist), the wheel is installed into a fresh virtual environment whose
other dependencies come from this test's environment (a ``.pth`` line; the repository is not on the path, the
editable install's finder is not loaded), and from an empty folder a bundle is fetched, trained for one epoch,
evaluated and put through a small fairness trial."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("monai_fair", "bundles", "setup.py", "setup.cfg", "pyproject.toml", "MANIFEST.in", "README.md")
SOURCES += ("LICENSE", "constraints.txt")
OUTPUTS = ("models", "eval", "data", "runs", "logs", "trial", "__pycache__", "*.pyc", "*.egg-info")
# small, quick runs: the bundle's own synthetic data (generated on first run), a small network input, one epoch
TINY = {"epochs": 1, "batch_size": 16, "spatial_size": [32, 32], "min_group_size": 4}
SYNTH = {"synthetic#n_samples": 96, "synthetic#image_size": 32}


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 300) -> str:
    proc = subprocess.run(cmd, cwd=str(cwd), env=env, capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-6000:]}"
    return proc.stdout


def _build(tmp: Path) -> tuple[Path, Path]:
    """sdist from a copy of the sources, then the wheel from the unpacked sdist (as ``python -m build`` does)."""
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():  # run outputs of the bundles and caches are not sources
            ignore = OUTPUTS if name == "bundles" else OUTPUTS[-3:]
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns(*ignore))
        else:
            shutil.copy2(REPO / name, src / name)
    dist = tmp / "dist"
    code = "import sys; from setuptools import build_meta as b; print(getattr(b, sys.argv[1])(sys.argv[2]))"
    env = dict(os.environ, PYTHONPATH="")
    sdist = dist / _run([sys.executable, "-c", code, "build_sdist", str(dist)], src, env).strip().splitlines()[-1]
    with tarfile.open(sdist) as tf:
        names = tf.getnames()
        tf.extractall(tmp / "sdist", filter="data")
    root = sdist.name[: -len(".tar.gz")]
    for f in ("bundles/baseline_classification/configs/metadata.json", "bundles/overlays", "constraints.txt"):
        assert f"{root}/{f}" in names, f"the sdist lacks {f}"
    out = _run([sys.executable, "-c", code, "build_wheel", str(dist)], tmp / "sdist" / root, env)
    return sdist, dist / out.strip().splitlines()[-1]


def test_wheel_install_bundle_get_train_evaluate_trial(tmp_path):
    sdist, wheel = _build(tmp_path)

    # the wheel: package data, typing marker, console script, licence, ranges with upper bounds
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        meta = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        entry = zf.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    for bundle in ("baseline_classification", "fairness_trial", "apple_segmentation"):
        assert f"monai_fair/_bundles/{bundle}/configs/metadata.json" in names
    assert "monai_fair/_bundles/overlays/fairness_classification.json" in names
    assert "monai_fair/py.typed" in names
    assert not [n for n in names if "/models/" in n or "/eval/" in n or n.endswith(".pyc")]
    assert "monai-fair = monai_fair.__main__:main" in entry
    assert "License: Apache-2.0" in meta and "Classifier: Typing :: Typed" in meta
    from packaging.requirements import Requirement

    reqs = [Requirement(ln.split(":", 1)[1]) for ln in meta.splitlines() if ln.startswith("Requires-Dist:")]
    torch_req = next(r for r in reqs if r.name == "torch" and r.marker is None)
    assert torch_req.specifier.contains("2.13.0") and not torch_req.specifier.contains("3.0")
    assert any(r.name == "itk" and r.marker is not None and "itk" in str(r.marker) for r in reqs)
    assert not any(r.name in ("itk", "nibabel") and r.marker is None for r in reqs), "readers must stay extras"

    # a fresh venv: the wheel installed there, the other dependencies from this environment through a .pth line
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, dict(os.environ))
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MONAI_FAIR_BUNDLES", "PYTHONHOME")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="")
    pip = [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", "--no-index"]
    _run(pip + ["--disable-pip-version-check", str(wheel)], tmp_path, env)
    site = _run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path, env).strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "_project_environment.pth").write_text("\n".join(sorted(ours)) + "\n")

    work = tmp_path / "empty"
    work.mkdir()
    where = _run([str(py), "-c", "import monai_fair; print(monai_fair.__file__)"], work, env).strip()
    assert Path(where).resolve().is_relative_to(venv.resolve()), f"monai_fair imported from {where}, not the wheel"

    # bundle list / get through the console script, into the empty folder
    listing = _run([str(venv / "bin" / "monai-fair"), "bundle", "list"], work, env)
    assert "baseline_classification" in listing and str(venv) in listing, listing
    _run([str(venv / "bin" / "monai-fair"), "bundle", "get", "baseline_classification", "."], work, env)
    assert sorted(p.name for p in work.iterdir()) == ["LICENSE", "configs", "docs"]

    # train one epoch and evaluate with MONAI's bundle runner, on the bundle's own (generated) synthetic data
    overrides = []
    for k, v in {**TINY, **SYNTH}.items():
        overrides += [f"--{k}", json.dumps(v)]
    run = [str(py), "-m", "monai.bundle", "run", "--config_file"]
    _run(run + ["configs/train.json"] + overrides, work, env)
    assert (work / "models" / "model.pt").is_file()
    _run(run + ["['configs/train.json','configs/evaluate.json']"] + overrides, work, env)
    report = json.loads((work / "eval" / "report.json").read_text())
    assert report["overall"]["n"] > 0
    assert (work / "eval" / "metrics.csv").read_text().startswith("test_auc")

    # the fairness trial: its arms' bundles come from the installed package data
    trial = [str(py), "-m", "monai_fair", "trial", "--datalist", "data/synthetic/datalist.json"]
    trial += ["--task", "classification", "--methods", "group_thresholds", "--seeds", "0", "--out", "trial"]
    trial += ["--executor", "inprocess", "--n-bootstrap", "20", "--min-group-size", "4", "--no-progress"]
    for k, v in TINY.items():
        trial += ["--override", f"{k}={json.dumps(v)}"]
    _run(trial, work, env, timeout=600)
    assert (work / "trial" / "report" / "trial_report.md").is_file(), sorted(map(str, (work / "trial").rglob("*")))
    bundles = Path(json.loads((work / "trial" / "trial.json").read_text())["bundles"])
    assert bundles.resolve().is_relative_to(venv.resolve()) and bundles.name == "_bundles", bundles
