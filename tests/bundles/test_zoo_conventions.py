# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Every trainable bundle follows the model zoo's id rules (parsed with MONAI's ``ConfigParser``), keeps its ``$``
expressions short, names its evaluation metrics after the split scored (``test_*``, ``validation_*``) and resolves
its data ids without writing files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from monai.bundle import ConfigParser

REPO = Path(__file__).resolve().parents[2]
BUNDLES = REPO / "bundles"

#: the zoo's required ids of a training config (Project-MONAI/model-zoo CONTRIBUTING.md) and what MONAI Label's
#: bundle trainer reads
ZOO_TRAIN_IDS = (
    "bundle_root",
    "device",
    "dataset_dir",
    "train#trainer",
    "train#trainer#max_epochs",
    "train#dataset",
    "train#dataset#data",
    "train#handlers",
    "validate#evaluator",
    "validate#handlers",
    "validate#dataset#data",
)

#: (bundle, stage config files merged after configs/train.json); () is train.json alone
STAGES = [
    ("baseline_classification", ()),
    ("baseline_segmentation", ()),
    ("fairdi_classification", ()),
    ("fairdi_classification", ("train_baseline.json",)),
    ("fairdi_classification", ("train_teachers.json",)),
    ("fairdi_classification", ("train_student.json",)),
    ("fairdi_segmentation", ()),
    ("fairdi_segmentation", ("train_baseline.json",)),
    ("fairdi_segmentation", ("train_teachers.json",)),
    ("fairdi_segmentation", ("train_student.json",)),
    ("apple_segmentation", ()),
    ("apple_segmentation", ("train_base.json",)),
    ("apple_segmentation", ("train_apple.json",)),
    ("snnl_pruning_classification", ()),
    ("snnl_pruning_classification", ("prune.json",)),
    ("snnl_pruning_classification", ("prune.json", "control_finetune_only.json")),
    ("snnl_pruning_classification", ("prune.json", "control_random_pruning.json")),
    ("snnl_pruning_classification", ("fairprune.json",)),
    ("neural_collapse_classification", ()),
]
TRAINABLE = sorted({b for b, _ in STAGES})


def _parser(bundle: str, extra: tuple[str, ...] = ()) -> ConfigParser:
    cfg = BUNDLES / bundle / "configs"
    parser = ConfigParser()
    parser.read_config([str(cfg / "train.json")] + [str(cfg / f) for f in extra])
    return parser


def test_every_bundle_dir_is_covered():
    skip = {"overlays", "fairness_trial"}  # an overlay set, and the trial that runs the other bundles
    found = {p.name for p in BUNDLES.iterdir() if p.is_dir() and p.name not in skip}
    assert found == set(TRAINABLE)


@pytest.mark.parametrize("bundle,extra", STAGES, ids=[f"{b}:{'+'.join(e) or 'train'}" for b, e in STAGES])
def test_zoo_train_ids(bundle, extra):
    parser = _parser(bundle, extra)
    missing = [i for i in ZOO_TRAIN_IDS if i not in parser]
    assert not missing, f"{bundle} {extra}: missing zoo ids {missing}"
    for i in ("train#handlers", "validate#handlers"):
        value = parser.get(i)
        while isinstance(value, str) and value.startswith("@"):  # a stage may point at its own handler list
            value = parser.get(value[1:])
        assert isinstance(value, list), f"{bundle} {extra}: {i} is not a list of handlers"


@pytest.mark.parametrize("bundle", TRAINABLE + ["fairness_trial"])
def test_bundle_layout_and_short_expressions(bundle):
    root = BUNDLES / bundle
    for f in ("configs/metadata.json", "configs/logging.conf", "docs/README.md", "LICENSE", "configs/train.json"):
        assert (root / f).is_file(), f"{bundle}: {f} missing"
    if bundle in TRAINABLE:
        assert (root / "configs/evaluate.json").is_file() and (root / "configs/inference.json").is_file()

    long_exprs = []

    def walk(obj, path):
        if isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, f"{path}#{k}")
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                walk(v, f"{path}#{i}")
        elif isinstance(obj, str) and obj.startswith("$") and len(obj) > 120:
            long_exprs.append((path, len(obj)))

    for cfg in sorted((root / "configs").rglob("*.json")):
        walk(json.loads(cfg.read_text()), cfg.name)
    assert not long_exprs, f"$ expressions over 120 characters (move the logic into Python): {long_exprs}"


#: bundles whose evaluate.json takes ``eval_split`` (APPLE evaluates before/after perturbation on ``evaluate#split``)
SPLIT_EVALUATED = [b for b in TRAINABLE if b != "apple_segmentation"]


def _evaluation_metric_names(bundle: str, split: str) -> list[str]:
    """The names the evaluator of ``train.json + evaluate.json`` logs and saves when it scores ``split``."""
    parser = _parser(bundle, ("evaluate.json",))
    parser.update({"eval_split": split, "num_groups": 2, "group_names": ["F", "M"]})
    names = []
    for key in ("key_val_metric", "additional_metrics"):
        if f"validate#evaluator#{key}" in parser:
            names += list(parser.get_parsed_content(f"validate#evaluator#{key}") or {})
    return names


@pytest.mark.parametrize("bundle", SPLIT_EVALUATED)
@pytest.mark.parametrize("split", ["test", "validation"])
def test_evaluation_metrics_are_named_by_the_split_scored(bundle, split):
    names = _evaluation_metric_names(bundle, split)
    assert names, f"{bundle}: its evaluation computes no metric"
    wrong = [n for n in names if not n.startswith(f"{split}_")]
    assert not wrong, f"{bundle}/configs/evaluate.json scoring {split!r} names metrics {wrong}; use {split}_*"


def test_apple_evaluation_metrics_are_named_test():
    """APPLE scores its ``evaluate#split`` (test) before and after the perturbation, with test_* names."""
    cfg = json.loads((BUNDLES / "apple_segmentation" / "configs" / "evaluate.json").read_text())
    assert cfg["evaluate"]["split"] == "test"
    for stage in ("before", "after"):
        names = [*cfg["evaluate"][stage]["key_val_metric"], *cfg["evaluate"][stage]["additional_metrics"]]
        assert names and all(n.startswith("test_") for n in names), names


@pytest.mark.parametrize("bundle", TRAINABLE)
def test_resolving_data_ids_writes_nothing(bundle, tmp_path):
    """Resolving ``dataset_dir``/``datalist`` never generates data or writes files (that happens in initialize)."""
    parser = _parser(bundle)
    parser["bundle_root"] = str(tmp_path)
    for i in ("dataset_dir", "datalist"):
        if i in parser:
            parser.get_parsed_content(i)
    assert not any(tmp_path.iterdir()), f"{bundle}: resolving data ids wrote {sorted(tmp_path.rglob('*'))}"
