# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The baseline segmentation bundle: one spatial_dims switch, model-zoo ids, no side effect on resolution, a real
short run on its default (2D synthetic) data, verify_net_in_out. The 3D run end to end is the README's quick start
(tests/quickstart)."""

from __future__ import annotations

import pytest
from monai.bundle import ConfigParser

from tests.bundles.test_baseline_classification import TRIAL_IDS, ZOO_IDS
from tests.conftest import BUNDLES_DIR, config_expressions, run_bundle_cli, verify_net_in_out

CONFIGS = BUNDLES_DIR / "baseline_segmentation" / "configs"


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_one_spatial_dims_switch_and_zoo_ids(tmp_path, spatial_dims):
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "train.json")])
    for key in ZOO_IDS + TRIAL_IDS:
        assert key in parser, key
    assert not [e for e in config_expressions(parser.get()) if len(e) > 160]
    parser["bundle_root"], parser["spatial_dims"] = str(tmp_path), spatial_dims
    net = parser.get_parsed_content("network_def")
    assert net.dimensions == spatial_dims if hasattr(net, "dimensions") else True
    assert parser.get_parsed_content("patch_size") == ([128, 128] if spatial_dims == 2 else [96, 96, 96])
    inferer = parser.get_parsed_content("validate#inferer")
    assert list(inferer.roi_size) == parser.get_parsed_content("patch_size")  # sliding window over whole images
    for key in ("train#preprocessing", "validate#preprocessing", "loss", "datalist"):
        parser.get_parsed_content(key)
    assert not list(tmp_path.iterdir())  # resolving ids generated nothing
    evaluate = ConfigParser()
    evaluate.read_config([str(CONFIGS / "train.json"), str(CONFIGS / "evaluate.json")])
    names = set(evaluate["validate#key_metric"]) | set(evaluate["validate#additional_metrics"])
    assert names == {"test_mean_dice", "test_worst_group_dice", "test_dice_gap"}


@pytest.mark.slow
def test_default_2d_run_and_verify_net_in_out(bundle_copy, tmp_path):
    root = bundle_copy("baseline_segmentation")
    overrides = {
        "dataset_dir": str(tmp_path / "data"),
        "synthetic": {"n_samples": 24, "image_size": 32, "seed": 0},
        "epochs": 1,
        "patch_size": [32, 32],
    }
    out = run_bundle_cli(root, ["train.json"], overrides)
    assert (root / "models" / "model.pt").is_file(), out[-2000:]
    verify_net_in_out(root)
