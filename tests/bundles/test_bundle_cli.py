# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""``python -m monai_fair bundle list|get|sync-versions`` and the bundle lookup the trial and MONAI Label use
(the installed wheel's own copy is tested end to end in tests/integration/test_wheel_install.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from monai_fair.__main__ import main
from monai_fair.bundles import archive_bundle, bundle_path, bundles_dir, get_bundle, list_bundles, split_named
from monai_fair.trial.arms import default_bundles_dir

REPO = Path(__file__).resolve().parents[2]


def test_lookup_order(tmp_path, monkeypatch):
    monkeypatch.delenv("MONAI_FAIR_BUNDLES", raising=False)
    # an editable install / checkout: the repository's bundles (no package data next to the package)
    assert bundles_dir() == REPO / "bundles" and default_bundles_dir() == REPO / "bundles"
    monkeypatch.setenv("MONAI_FAIR_BUNDLES", str(tmp_path))
    assert bundles_dir() == tmp_path.resolve() and default_bundles_dir() == tmp_path
    monkeypatch.setenv("MONAI_FAIR_BUNDLES", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="MONAI_FAIR_BUNDLES"):
        bundles_dir()


def test_list_and_unknown_name(capsys):
    names = list(list_bundles())
    assert "baseline_classification" in names and "fairness_trial" in names and "overlays" not in names
    assert main(["bundle", "list"]) == 0
    out = capsys.readouterr().out
    assert all(n in out for n in names) and "overlays" in out
    with pytest.raises(KeyError, match="available: .*baseline_classification"):
        bundle_path("no_such_bundle")
    assert main(["bundle", "get", "no_such_bundle", "x"]) == 2


def test_get_writes_the_zoo_layout_and_refuses_to_overwrite(tmp_path, capsys):
    src = REPO / "bundles" / "baseline_classification"
    out = get_bundle("baseline_classification", tmp_path / "b")
    assert sorted(p.name for p in out.iterdir()) == ["LICENSE", "configs", "docs"]
    want = sorted(p.relative_to(src) for p in (src / "configs").rglob("*") if p.is_file())
    assert sorted(p.relative_to(out) for p in (out / "configs").rglob("*")) == want
    (out / "configs" / "train.json").write_text("{}")
    assert main(["bundle", "get", "baseline_classification", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err and (out / "configs" / "train.json").read_text() == "{}"
    assert main(["bundle", "get", "baseline_classification", str(out), "--overwrite"]) == 0
    assert (out / "configs" / "train.json").read_text() == (src / "configs" / "train.json").read_text()
    overlays = get_bundle("overlays", tmp_path / "o")
    assert {p.name for p in overlays.iterdir()} == {"fairness_classification.json", "fairness_segmentation.json"}


def test_archive_in_the_zoo_download_format(tmp_path):
    path = archive_bundle("snnl_pruning_classification", tmp_path)
    version = json.loads((REPO / "bundles/snnl_pruning_classification/configs/metadata.json").read_text())["version"]
    assert path.name == f"snnl_pruning_classification_v{version}.zip"
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        zf.extractall(tmp_path / "unpacked")
    assert all(n.startswith("snnl_pruning_classification/") for n in names)
    assert "snnl_pruning_classification/configs/metadata.json" in names
    root = tmp_path / "unpacked" / "snnl_pruning_classification"
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(root / "configs" / "train.json"))
    assert "train#trainer" in parser


def test_split_named():
    assert split_named("test", {"val_auc": 1, "worst_group_auc": 2}) == {"test_auc": 1, "test_worst_group_auc": 2}
    assert split_named("validation", {"test_auc": 1}) == {"validation_auc": 1}
    assert split_named("test", None) == {}
    with pytest.raises(ValueError, match="test_auc"):
        split_named("test", {"val_auc": 1, "test_auc": 2})


def test_sync_versions_command():
    proc = subprocess.run(
        [sys.executable, "-m", "monai_fair", "bundle", "sync-versions", "--constraints", "constraints.txt"],
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and "matches" in proc.stdout, proc.stdout + proc.stderr


def test_get_warns_about_missing_readers(tmp_path, capsys, monkeypatch):
    import importlib.metadata

    real = importlib.metadata.version

    def version(dist):
        if dist == "itk":
            raise importlib.metadata.PackageNotFoundError(dist)
        return real(dist)

    monkeypatch.setattr(importlib.metadata, "version", version)
    assert main(["bundle", "get", "baseline_classification", str(tmp_path / "b")]) == 0
    assert "needs itk, not installed" in capsys.readouterr().err


def test_monailabel_init_app_takes_a_packaged_bundle_by_name(tmp_path):
    """MONAI Label's app folder from a bundle name (found like the trial finds them), without a checkout path."""
    from monai_fair.apps.monailabel.__main__ import main as label_main

    assert label_main(["init-app", str(tmp_path / "app"), "--bundle", "apple_segmentation"]) == 0
    served = tmp_path / "app" / "model" / "apple_segmentation"
    src = REPO / "bundles" / "apple_segmentation" / "configs" / "train.json"
    assert (served / "configs" / "train.json").read_text() == src.read_text()
    assert label_main(["init-app", str(tmp_path / "app"), "--bundle", "no_such_bundle"]) == 2
