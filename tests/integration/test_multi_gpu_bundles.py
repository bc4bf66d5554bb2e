# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""``configs/multi_gpu_train.json`` of the method bundles, run the MONAI way on CPU with gloo and 2 processes.

``torchrun --nproc_per_node=2 -m monai.bundle run --config_file
"['configs/train.json','configs/multi_gpu_train.json']"`` trains with a DDP network and ``DistributedSampler``s; the
validation shards are all-gathered by the group metrics and the fairness report. The DDP validation's group metrics
and report must equal a single-process evaluation of the saved model on the same data (point estimates; bootstrap
intervals depend on the sample order and are not compared).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monai_fair.data import ensure_synthetic_dataset
from tests.integration.ddp_utils import assert_ddp_matches_single, bundle_run, copy_bundle, write_ddp_outputs

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ddp")]

# bundles whose multi_gpu_train.json is covered here (the others are listed in docs/integration.md)
DDP_BUNDLES = {
    "baseline_classification": {},
    # SNNL's training stage saves the pre-pruning model as baseline.pt; evaluate that one here
    "snnl_pruning_classification": {"baseline_ckpt_name": "model.pt"},
}


@pytest.mark.parametrize("name", sorted(DDP_BUNDLES))
def test_ddp_gloo_matches_single_process(name, tmp_path):
    bundle = copy_bundle(name, tmp_path)
    datalist = ensure_synthetic_dataset(tmp_path / "data", task="classification", n_samples=96, image_size=32, seed=4)
    cfg = bundle / "configs"
    common = [
        "--bundle_root",
        str(bundle),
        "--datalist",
        datalist,
        "--epochs",
        "1",
        "--batch_size",
        "8",
        "--meta_file",
        str(cfg / "metadata.json"),
        "--logging_file",
        str(cfg / "logging.conf"),
    ]
    for k, v in DDP_BUNDLES[name].items():
        common += [f"--{k}", v]
    outputs = write_ddp_outputs(tmp_path / "ddp_outputs.json", "validate#handlers", "classification")
    bundle_run([cfg / "train.json", cfg / "multi_gpu_train.json", outputs], common, bundle, distributed=True)
    assert (bundle / "models" / "model.pt").is_file()

    # single process: evaluate the saved model on the same validation split
    bundle_run(
        [cfg / "train.json", cfg / "evaluate.json"],
        common
        + ["--eval_split", "validation", "--min_group_size", "1", "--output_dir", str(bundle / "eval" / "single")],
        bundle,
    )
    n_val = len(json.loads(Path(datalist).read_text())["validation"])
    assert_ddp_matches_single(bundle / "eval" / "ddp", bundle / "eval" / "single", n_val, {"val_auc"})


def _readme_torchrun() -> list[str]:
    """The README's torchrun command (the one line of its code blocks that starts with ``torchrun``)."""
    import shlex

    from tests.integration.ddp_utils import REPO

    lines = [ln.strip() for ln in (REPO / "README.md").read_text().splitlines() if ln.strip().startswith("torchrun ")]
    assert len(lines) == 1, f"README.md should show one torchrun command, found {lines}"
    return shlex.split(lines[0])


#: per bundle: small, quick overrides appended to the README's command (1 epoch on a little synthetic data)
FRESH = {
    "baseline_classification": ["--batch_size", "8", "--spatial_size", "[32,32]", "--synthetic#n_samples", "96"],
    "baseline_segmentation": ["--batch_size", "2", "--patch_size", "[32,32]", "--synthetic#n_samples", "40"],
}


@pytest.mark.xdist_group("ddp_readme")  # its own group (--standalone picks a free port): balances the two workers
@pytest.mark.parametrize("name", sorted(FRESH))
def test_readme_torchrun_command_on_a_fresh_bundle(name, tmp_path):
    """The README's command, as written, in a folder written by ``bundle get``: rank 0 generates the default
    synthetic datalist behind a barrier, every rank checks it, and the run ends with the model written."""
    import sys

    from monai_fair.bundles import get_bundle
    from tests.integration.ddp_utils import run

    cmd = _readme_torchrun()
    assert cmd[0] == "torchrun" and "--nproc_per_node=2" in cmd and "--standalone" in cmd, cmd
    bundle = get_bundle(name, tmp_path / "fresh")
    tiny = ["--epochs", "1", "--synthetic#image_size", "32", *FRESH[name]]
    run([sys.executable, "-m", "torch.distributed.run", *cmd[1:], *tiny], bundle)
    assert (bundle / "data" / "synthetic" / "datalist.json").is_file()
    assert (bundle / "models" / "model.pt").is_file()
