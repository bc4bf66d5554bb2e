# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""A hand-written MONAI/Ignite training script using monai-fair's parts (see docs/integration.md).

What monai-fair adds to an ordinary MONAI script, step by step:

1. the datalist items carry an integer ``group`` (``monai_fair.data.load_fair_datalist``);
2. ``GroupSupervisedTrainer(loss_takes_group=True)`` calls a group-aware loss as ``loss(pred, label, group)``,
   here Fair Identity Scaling (``monai_fair.methods.fairdi.FairIdentityScalingLoss``);
3. ``GroupSupervisedEvaluator`` puts the batch's ``group`` into the engine output, so
   ``GroupClassificationMetricHandler`` can track the worst-group AUC as key metric (best checkpoint = fairest);
4. ``FairnessReportHandler`` writes report.json / report.md / PNGs when the evaluation completes;
5. the same numbers are available functionally (``compute_group_classification_metrics``) in a plain loop.

Run::

    python examples/fair_training_ignite.py --out runs/example --epochs 2 --n-samples 200
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from monai.data import CacheDataset, DataLoader
from monai.handlers import CheckpointSaver, StatsHandler, ValidationHandler, from_engine
from monai.networks.nets import resnet10
from monai.transforms import (
    Activationsd,
    AsDiscreted,
    Compose,
    EnsureChannelFirstd,
    EnsureTyped,
    LoadImaged,
    RandFlipd,
    ScaleIntensityd,
    SqueezeDimd,
)
from monai.utils import set_determinism

from monai_fair.data import ensure_synthetic_dataset, load_fair_datalist
from monai_fair.engines import GroupSupervisedEvaluator, GroupSupervisedTrainer
from monai_fair.handlers import FairnessReportHandler, GroupClassificationMetricHandler
from monai_fair.methods.fairdi import FairIdentityScalingLoss
from monai_fair.metrics import compute_group_classification_metrics


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/fair_example", help="output folder (data, checkpoints, report)")
    parser.add_argument("--datalist", default=None, help="a monai-fair datalist (default: synthetic data in --out)")
    parser.add_argument("--n-samples", type=int, default=400)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--fis-c", type=float, default=0.5, help="FIS mix of individual and group weights")
    parser.add_argument("--min-group-size", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    set_determinism(seed=args.seed)
    out = Path(args.out)
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    datalist = args.datalist or ensure_synthetic_dataset(
        out / "data", task="classification", n_samples=args.n_samples, image_size=args.image_size, seed=args.seed
    )
    # 1. items with an integer "group" (validated), and the group names
    train_items, group_names = load_fair_datalist(datalist, split="training")
    val_items, _ = load_fair_datalist(datalist, split="validation")

    base = [
        LoadImaged(keys="image", image_only=True),
        EnsureChannelFirstd(keys="image"),
        SqueezeDimd(keys="image", dim=3),  # a single 2D DICOM read by ITK has a trailing depth of 1
        ScaleIntensityd(keys="image"),
        EnsureTyped(keys=["image", "label", "group"], track_meta=False),  # "group" rides along untouched
    ]
    train_ds = CacheDataset(
        train_items, Compose(base + [RandFlipd(keys="image", prob=0.5, spatial_axis=1)]), progress=False
    )
    val_ds = CacheDataset(val_items, Compose(base), progress=False)
    train_loader = DataLoader(train_ds, batch_size=args.batch_size, shuffle=True, num_workers=0)
    val_loader = DataLoader(val_ds, batch_size=args.batch_size, shuffle=False, num_workers=0)

    net = resnet10(spatial_dims=2, n_input_channels=3, num_classes=2).to(device)
    post = Compose([Activationsd(keys="pred", softmax=True), AsDiscreted(keys="label", to_onehot=2)])

    # 3. + 4. group metric as key metric, fairness report at the end of every evaluation
    evaluator = GroupSupervisedEvaluator(
        device=device,
        val_data_loader=val_loader,
        network=net,
        postprocessing=post,
        key_val_metric={"val_worst_group_auc": GroupClassificationMetricHandler(reduction="worst_group_auc")},
        additional_metrics={"val_auc_gap": GroupClassificationMetricHandler(reduction="auc_gap")},
        val_handlers=[
            StatsHandler(iteration_log=False),
            CheckpointSaver(
                save_dir=str(out / "models"),
                save_dict={"model": net},
                save_key_metric=True,
                key_metric_filename="model.pt",
            ),
            FairnessReportHandler(
                output_dir=out / "eval",
                task="classification",
                group_names=group_names,
                min_group_size=args.min_group_size,
                n_bootstrap=50,
            ),
        ],
    )
    # 2. a group-aware loss: the trainer passes batch["group"] as third argument
    trainer = GroupSupervisedTrainer(
        device=device,
        max_epochs=args.epochs,
        train_data_loader=train_loader,
        network=net,
        optimizer=torch.optim.Adam(net.parameters(), 1e-3),
        loss_function=FairIdentityScalingLoss(c=args.fis_c, num_groups=len(group_names)),
        loss_takes_group=True,
        postprocessing=post,
        train_handlers=[
            ValidationHandler(validator=evaluator, interval=1, epoch_level=True),
            StatsHandler(tag_name="train_loss", output_transform=from_engine(["loss"], first=True)),
        ],
    )
    trainer.run()

    # 5. the same numbers in a plain PyTorch loop (e.g. in a notebook), from the last model state
    net.eval()
    scores, labels, groups = [], [], []
    with torch.no_grad():
        for batch in val_loader:
            scores.append(torch.softmax(net(batch["image"].to(device)), 1)[:, 1].cpu())
            labels.append(batch["label"].reshape(-1))
            groups.append(batch["group"].reshape(-1))
    metrics = compute_group_classification_metrics(
        torch.cat(scores), torch.cat(labels), torch.cat(groups), num_groups=len(group_names)
    )
    summary = {
        "worst_group_auc": metrics["fairness"]["worst_group_auc"],
        "auc_gap": metrics["fairness"]["auc_gap"],
        "report": str(out / "eval" / "report.json"),
    }
    print(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
