# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Label-bias injection: counts, determinism, records, and that validation/test are never touched."""

from __future__ import annotations

import json

import numpy as np
import pytest

from monai_fair.data import apply_label_bias_to_datalist, generate_classification_dataset, inject_label_bias


def _items():
    # group 0: 10 positives, 5 negatives; group 1: 8 positives
    g0 = [{"id": f"a{i}", "label": int(i < 10), "group": 0} for i in range(15)]
    g1 = [{"id": f"b{i}", "label": 1, "group": 1} for i in range(8)]
    return g0 + g1


def test_counts_and_record():
    items = _items()
    out, rec = inject_label_bias(items, fraction=0.34, group=0, seed=3)
    flipped = [it for it in out if it.get("label_flipped")]
    assert len(flipped) == rec["n_flipped"] == 3 and rec["n_candidates"] == 10  # round(0.34 * 10)
    assert all(it["group"] == 0 and it["label"] == 0 and it["label_clean"] == 1 for it in flipped)
    assert sorted(rec["flipped_ids"]) == sorted(it["id"] for it in flipped)
    assert rec["group"] == [0] and rec["from_label"] == 1 and rec["to_label"] == 0 and rec["split"] == "training"
    # the other items are unchanged, and the input is not modified
    unflipped = [it for it in items if it["id"] not in rec["flipped_ids"]]
    assert [it for it in out if not it.get("label_flipped")] == unflipped
    assert all("label_clean" not in it for it in items)
    # the choice is the first n of a seeded permutation of the candidates (hand computation)
    expect = np.sort(np.random.default_rng(3).permutation(np.arange(10))[:3])
    assert rec["flipped_ids"] == [f"a{i}" for i in expect]


def test_deterministic_and_seed_dependent():
    a = inject_label_bias(_items(), fraction=0.5, group=[0, 1], seed=7)[1]
    b = inject_label_bias(_items(), fraction=0.5, group=[0, 1], seed=7)[1]
    c = inject_label_bias(_items(), fraction=0.5, group=[0, 1], seed=8)[1]
    assert a == b and a["flipped_ids"] != c["flipped_ids"] and a["n_flipped"] == 9  # round(0.5 * 18)
    assert inject_label_bias(_items(), fraction=1.0, group=1, seed=0)[1]["n_flipped"] == 8
    assert inject_label_bias(_items(), fraction=0.0, group=1, seed=0)[1]["n_flipped"] == 0


def test_refusals():
    with pytest.raises(ValueError, match="only injected into the training split"):
        inject_label_bias(_items(), fraction=0.5, group=0, split="validation")
    with pytest.raises(ValueError, match="fraction"):
        inject_label_bias(_items(), fraction=1.5, group=0)
    with pytest.raises(ValueError, match="nothing to flip"):
        inject_label_bias(_items(), fraction=0.5, group=1, from_label=0, to_label=1)
    out, _ = inject_label_bias(_items(), fraction=0.5, group=0)
    with pytest.raises(ValueError, match="already"):
        inject_label_bias(out, fraction=0.5, group=0)
    with pytest.raises(ValueError, match="not a class index"):
        inject_label_bias([{"label": "m.nii.gz", "group": 0}], fraction=0.5, group=0)


def test_datalist_file(tmp_path):
    path = generate_classification_dataset(tmp_path, n_samples=60, image_size=16, seed=0)
    out = apply_label_bias_to_datalist(path, fraction=0.5, group="F", seed=1)
    clean, biased = json.loads(path.read_text()), json.loads(open(out).read())
    assert "label_bias" not in clean and biased["label_bias"]["group"] == [0]
    assert biased["validation"] == clean["validation"] and biased["test"] == clean["test"]
    n_pos_f = sum(1 for it in clean["training"] if it["group"] == 0 and it["label"] == 1)
    assert biased["label_bias"]["n_flipped"] == round(0.5 * n_pos_f) > 0
    assert sum(it.get("label_flipped", False) for it in biased["training"]) == biased["label_bias"]["n_flipped"]
    mtime = (tmp_path / "datalist_labelbias.json").stat().st_mtime_ns
    assert apply_label_bias_to_datalist(path, fraction=0.5, group="F", seed=1) == out  # reused
    assert (tmp_path / "datalist_labelbias.json").stat().st_mtime_ns == mtime
    generate_classification_dataset(tmp_path, n_samples=62, image_size=16, seed=0)  # the clean datalist changes
    apply_label_bias_to_datalist(path, fraction=0.5, group="F", seed=1)
    assert (tmp_path / "datalist_labelbias.json").stat().st_mtime_ns != mtime  # ... so the biased one is rebuilt
    assert sum(len(json.loads(open(out).read())[k]) for k in ("training", "validation", "test")) == 62
    with pytest.raises(ValueError, match="already has injected"):
        apply_label_bias_to_datalist(out, fraction=0.5, group=0)
    with pytest.raises(ValueError, match="not in group_names"):
        apply_label_bias_to_datalist(path, fraction=0.5, group="X")
