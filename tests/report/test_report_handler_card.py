# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""FairnessReportHandler: the fairness card next to the report, bundle metadata found from the output folder,
opt-in recording under ``fairness`` in metadata.json, cluster ids, and logs that never name a suppressed group."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from ignite.engine import Engine
from sklearn.metrics import roc_auc_score

from monai_fair.handlers import FairnessReportHandler


def _batches(n_batches=6, bs=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for b in range(n_batches):
        y = torch.randint(0, 2, (bs,), generator=g)
        grp = torch.randint(0, 2, (bs,), generator=g)
        if b == 0:
            grp[:4] = 2  # 4 cases of group 2 ("Yakutat"): suppressed at min_group_size 10
        p1 = (torch.rand(bs, generator=g) * 0.7 + 0.3 * y).clamp(0, 1)
        pid = torch.arange(bs) // 2 + b * bs  # two images per patient
        out.append({"pred": torch.stack([1 - p1, p1], 1), "label": y, "group": grp, "patient": pid})
    return out


def _bundle(tmp_path):
    root = tmp_path / "bundle"
    (root / "configs").mkdir(parents=True)
    meta = {"version": "0.2.0", "name": "Test model", "task": "classification"}
    (root / "configs" / "metadata.json").write_text(json.dumps(meta))
    return root


def test_handler_writes_card_and_records_metadata(tmp_path, caplog):
    root = _bundle(tmp_path)
    data = _batches()
    eng = Engine(lambda engine, batch: batch)
    eng.logger.setLevel(logging.INFO)
    FairnessReportHandler(
        root / "eval",
        "classification",
        ["F", "M", "Yakutat"],
        n_bootstrap=50,
        split="test",
        attribute="sex",
        record_in_metadata=True,
        output_transform=lambda o: (o["pred"], o["label"], o["group"], o["patient"]),
    ).attach(eng)
    with caplog.at_level(logging.INFO):
        eng.run(data, max_epochs=1)
    rep = json.loads((root / "eval" / "report.json").read_text())
    card = json.loads((root / "eval" / "fairness_card.json").read_text())
    # group 2 (4 cases) is hidden; overall minus {F, M} would be exactly it -> the smaller of F, M is hidden too
    assert rep["suppressed_groups"] == 2 and len(rep["groups"]) == 1
    assert rep["bootstrap"] == "cluster"
    assert card["model"]["name"] == "Test model" and card["model"]["version"] == "0.2.0"
    assert card["data"]["split"] == "test" and card["groups"] == {k: v["n"] for k, v in rep["groups"].items()}
    assert card["suppression"]["min_group_size"] == 10
    md = (root / "eval" / "fairness_card.md").read_text()
    assert md.startswith("# Fairness card: Test model") and "Suppression policy" in md
    meta = json.loads((root / "configs" / "metadata.json").read_text())
    assert meta["version"] == "0.2.0" and meta["fairness"]["groups"] == card["groups"]
    assert set(meta["fairness"]["headline"]) == set(card["headline"])
    text = caplog.text + "".join(
        p.read_text(errors="replace") for p in (root / "eval").glob("*.*") if p.suffix != ".png"
    )
    assert "Yakutat" not in text and "fairness report (classification)" in caplog.text


def test_handler_card_values_two_groups(tmp_path):
    data = _batches(seed=1)
    for b in data:
        b["group"] = b["group"].clamp_max(1)
    eng = Engine(lambda engine, batch: batch)
    FairnessReportHandler(tmp_path / "out", "classification", ["F", "M"], n_bootstrap=40, plots=False).attach(eng)
    eng.run(data, max_epochs=1)
    card = json.loads((tmp_path / "out" / "fairness_card.json").read_text())
    p = torch.cat([b["pred"] for b in data])[:, 1].numpy()
    y = torch.cat([b["label"] for b in data]).numpy()
    g = torch.cat([b["group"] for b in data]).numpy()
    aucs = [roc_auc_score(y[g == k], p[g == k]) for k in (0, 1)]
    assert card["headline"]["auc_gap"]["value"] == pytest.approx(abs(aucs[0] - aucs[1]))
    assert card["headline"]["auc_gap"]["verdict"] in ("disparity", "no disparity shown", "insufficient evidence")
    assert card["headline"]["overall_auc"]["value"] == pytest.approx(roc_auc_score(y, p))
    assert card["model"] == {} and card["threshold"] == {"value": 0.5, "source": "default 0.5"}
    assert "metadata" not in json.dumps(card)


def test_handler_passes_alpha_and_tolerance(tmp_path):
    """The handler takes the report's alpha and tolerance (ReportOptions): recorded and stated in the verdict rule."""
    eng = Engine(lambda engine, batch: batch)
    h = FairnessReportHandler(tmp_path, "classification", ["F", "M", "X"], n_bootstrap=20, alpha=0.01, tolerance=0.1)
    h.attach(eng)
    eng.run(_batches(seed=2), max_epochs=1)
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["alpha"] == 0.01 and rep["tolerance"] == 0.1 and "alpha = 0.01" in rep["verdict_rule"]
    with pytest.raises(ValueError, match="alpha"):
        FairnessReportHandler(tmp_path, "classification", ["F", "M"], alpha=0)


def test_record_in_metadata_needs_a_bundle(tmp_path):
    with pytest.raises(ValueError, match="metadata_file"):
        FairnessReportHandler(tmp_path / "nowhere" / "eval", "classification", ["F", "M"], record_in_metadata=True)
