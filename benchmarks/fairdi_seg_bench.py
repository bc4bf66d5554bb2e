# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""FairDi vs plain training (ERM) on monai-fair's default synthetic segmentation data, over several seeds.

Segmentation sibling of ``benchmarks/fairdi_bench.py`` (same structure, same timing and aggregation helpers).
For each training seed, in one process (same data, same 2D MONAI UNet as the ``fairdi_segmentation`` bundle,
same transforms, same model selection):

* **ERM**: the UNet trained with Dice+CE (``monai.losses.DiceCELoss``) for ``--epochs`` epochs;
* **FairDi**: stage 0 baseline (FIS over per-image Dice+CE, ``--epochs``) -> one teacher per group fine-tuned from
  it on its own group's data (``--teacher-epochs``) -> student with own-group per-voxel distillation + Dice+CE
  (:class:`monai_fair.methods.fairdi.FairDistillationSegLoss`, ``--epochs``), teachers' class maps cached once.

Every model keeps the epoch with the best ``--selection`` on the validation split and is scored on the test split
with :func:`monai_fair.metrics.compute_group_segmentation_metrics` (per-image foreground Dice/IoU). Cost: the
student's median epoch time / ERM's median epoch time (same process; validation excluded), and FairDi's whole
pipeline (baseline + teachers + caching + student) relative to ERM's.

Run::

    python benchmarks/fairdi_seg_bench.py --seeds 0 1 2 --out docs/benchmarks/fairdi_seg_results.json
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from monai.data import CacheDataset, DataLoader
from monai.losses import DiceCELoss
from monai.networks.nets import UNet
from monai.transforms import (
    Compose,
    EnsureChannelFirstd,
    EnsureTyped,
    LoadImaged,
    RandFlipd,
    RandRotate90d,
    ScaleIntensityd,
)
from monai.utils import set_determinism

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fairdi_bench import _epoch_timer, _report  # noqa: E402  (shared helpers of the classification benchmark)

from monai_fair.data import ensure_synthetic_dataset, load_fair_datalist  # noqa: E402
from monai_fair.engines import GroupSupervisedTrainer
from monai_fair.methods.fairdi import (  # noqa: E402
    FairDistillationSegLoss,
    FairDiStudentTrainer,
    FairIdentityScalingLoss,
    GroupTeachers,  # noqa: E402
    cache_teacher_outputs,
    train_group_teachers,
)
from monai_fair.methods.fairdi.engines import TEACHER_KEY  # noqa: E402
from monai_fair.metrics import compute_group_segmentation_metrics  # noqa: E402
from monai_fair.metrics.group_segmentation import compute_per_image_dice_iou  # noqa: E402

KEYS = ["image", "label"]
DET = [
    LoadImaged(KEYS, image_only=True),
    EnsureChannelFirstd(KEYS),
    ScaleIntensityd("image"),
    EnsureTyped(["image", "label", "group"], track_meta=False),
]
# the cached teacher class maps follow the image's spatial augmentation (as in the bundle)
RAND = [
    RandFlipd(KEYS + [TEACHER_KEY], prob=0.5, spatial_axis=1, allow_missing_keys=True),
    RandRotate90d(KEYS + [TEACHER_KEY], prob=0.5, allow_missing_keys=True),
]
FAIRNESS = ("worst_group_dice", "es_dice", "worst_group_iou", "es_iou")


NET_CHANNELS = (16, 32, 64)  # the bundle's UNet; --channels changes it (e.g. for the cost with a larger network)


def _net(device):
    """The network of both arms: by default the ``fairdi_segmentation`` bundle's 2D UNet (16-32-64, 1 residual unit)."""
    return UNet(
        spatial_dims=2,
        in_channels=1,
        out_channels=2,
        channels=NET_CHANNELS,
        strides=(2,) * (len(NET_CHANNELS) - 1),
        num_res_units=1,
    ).to(device)


def _test(net, loader, device):
    net.eval()
    dice, iou, gs = [], [], []
    with torch.no_grad():
        for b in loader:
            # softmax probabilities are binarised by argmax inside compute_per_image_dice_iou
            d, i = compute_per_image_dice_iou(torch.softmax(net(b["image"].to(device)), 1).cpu(), b["label"])
            dice.append(d)
            iou.append(i)
            gs.append(b["group"].reshape(-1))
    net.train()
    return compute_group_segmentation_metrics(
        torch.cat(dice).numpy(), torch.cat(iou).numpy(), torch.cat(gs).numpy(), num_groups=2
    )


def _train(trainer_cls, net, loader, val_loader, loss, lr, epochs, selection, device, **kw):
    """Train; after every epoch score the validation split and keep the state with the best ``selection``."""
    from ignite.engine import Events

    trainer = trainer_cls(
        device=device,
        max_epochs=epochs,
        train_data_loader=loader,
        network=net,
        optimizer=torch.optim.Adam(net.parameters(), lr=lr),
        loss_function=loss,
        **kw,
    )
    times = _epoch_timer(trainer)  # registered first: reads the epoch time before validation runs
    keep = {"state": copy.deepcopy(net.state_dict()), "best": -np.inf}

    def _validate(engine):
        value = float(_test(net, val_loader, device)["fairness" if selection in FAIRNESS else "overall"][selection])
        if np.isfinite(value) and value > keep["best"]:
            keep["best"], keep["state"] = value, copy.deepcopy(net.state_dict())

    trainer.add_event_handler(Events.EPOCH_COMPLETED, _validate)
    trainer.run()
    net.load_state_dict(keep["state"])
    return times


def _summary(res):
    f, o, g = res["fairness"], res["overall"], res["groups"]
    out = {
        "dice": o["dice"],
        "iou": o["iou"],
        "dice_gap": f["dice_gap"],
        "iou_gap": f["iou_gap"],
        "worst_group_dice": f["worst_group_dice"],
        "worst_group_iou": f["worst_group_iou"],
        "es_dice": f["es_dice"],
        "ser": f["ser"],
    }
    for k, v in g.items():
        out[f"dice_g{k}"] = v["dice"]
        out[f"iou_g{k}"] = v["iou"]
    return {k: float(v) for k, v in out.items()}


def _interleaved_epoch_times(train_ds, student_ds, args, device, num_workers=0):
    """Plain and student epochs (fresh networks, no validation) alternated A-B-B-A, ``--timing-rounds`` of each.

    ``num_workers`` DataLoader worker processes for both arms (0: the transforms run in the training process).

    The sequential ERM-then-student timing drifts with the load of a shared machine; alternating the two kinds of
    epoch in short succession cancels most of that drift.
    """
    times: dict[str, list[float]] = {"plain": [], "student": []}
    pairs = (("plain", "student"), ("student", "plain"))
    order = [k for r in range(args.timing_rounds) for k in pairs[r % 2]]
    for kind in order:
        net = _net(device)
        common = {
            "device": device,
            "max_epochs": 1,
            "network": net,
            "optimizer": torch.optim.Adam(net.parameters(), lr=args.lr),
        }
        if kind == "plain":
            trainer = GroupSupervisedTrainer(
                train_data_loader=DataLoader(
                    train_ds, batch_size=args.batch_size, shuffle=True, num_workers=num_workers
                ),
                loss_function=DiceCELoss(to_onehot_y=True, softmax=True),
                **common,
            )
        else:
            trainer = FairDiStudentTrainer(
                train_data_loader=DataLoader(
                    student_ds, batch_size=args.batch_size, shuffle=True, num_workers=num_workers
                ),
                loss_function=FairDistillationSegLoss(temperature=args.temperature, lambda_kd=args.lambda_kd),
                **common,
            )
        epoch_times = _epoch_timer(trainer)
        trainer.run()
        times[kind].extend(epoch_times)
    return times


def run_seed(seed, datalist, args, device):
    train_items = load_fair_datalist(datalist, "training")[0]
    val_items = load_fair_datalist(datalist, "validation")[0]
    test_items = load_fair_datalist(datalist, "test")[0]
    det, aug = Compose(DET), Compose(DET + RAND)
    val_loader = DataLoader(CacheDataset(val_items, det, progress=False), batch_size=64)
    test_loader = DataLoader(CacheDataset(test_items, det, progress=False), batch_size=64)
    train_ds = CacheDataset(train_items, aug, progress=False)
    out = {}

    # ERM
    set_determinism(seed)
    t0 = time.perf_counter()
    erm = _net(device)
    erm_times = _train(
        GroupSupervisedTrainer,
        erm,
        DataLoader(train_ds, batch_size=args.batch_size, shuffle=True),
        val_loader,
        DiceCELoss(to_onehot_y=True, softmax=True),
        args.lr,
        args.epochs,
        args.selection,
        device,
    )
    erm_total = time.perf_counter() - t0
    out["erm"] = _summary(_test(erm, test_loader, device))

    # FairDi: stage 0 baseline (FIS over per-image Dice+CE, the bundle's default)
    set_determinism(seed)
    t0 = time.perf_counter()
    base = _net(device)
    _train(
        GroupSupervisedTrainer,
        base,
        DataLoader(train_ds, batch_size=args.batch_size, shuffle=True),
        val_loader,
        FairIdentityScalingLoss(base_loss="dice_ce", c=0.5),
        args.lr,
        args.epochs,
        args.selection,
        device,
        loss_takes_group=True,
    )
    out["fairdi_baseline"] = _summary(_test(base, test_loader, device))
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(base.state_dict(), f"{tmp}/baseline.pt")
        t_teach = time.perf_counter()
        teachers = train_group_teachers(
            lambda: _net(device),
            train_items,
            val_items,
            2,
            train_transform=aug,
            val_transform=det,
            task="segmentation",
            init_path=f"{tmp}/baseline.pt",
            epochs=args.teacher_epochs,
            batch_size=args.batch_size,
            learning_rate=args.teacher_lr,
            min_group_size=10,
            device=device,
        )
        t_teach = time.perf_counter() - t_teach
    t_cache = time.perf_counter()
    cached = cache_teacher_outputs(teachers, train_items, det, device=device, batch_size=64)
    t_cache = time.perf_counter() - t_cache
    student_ds = CacheDataset(cached, aug, progress=False)
    set_determinism(seed)
    student = _net(device)
    loss = FairDistillationSegLoss(temperature=args.temperature, lambda_kd=args.lambda_kd, supervised="dice_ce")
    stu_times = _train(
        FairDiStudentTrainer,
        student,
        DataLoader(student_ds, batch_size=args.batch_size, shuffle=True),
        val_loader,
        loss,
        args.lr,
        args.epochs,
        args.selection,
        device,
    )
    fairdi_total = time.perf_counter() - t0
    out["fairdi"] = _summary(_test(student, test_loader, device))
    out["teachers_per_group_test"] = {}
    for k in range(2):
        res = _test(teachers.teachers[k], test_loader, device)
        out["teachers_per_group_test"][f"teacher{k}_dice_on_own_group"] = float(res["groups"][k]["dice"])
    inter = _interleaved_epoch_times(train_ds, student_ds, args, device)
    out["cost"] = {
        "student_over_plain_epoch_interleaved": statistics.median(inter["student"]) / statistics.median(inter["plain"]),
        "erm_epoch_s": statistics.median(erm_times),
        "student_epoch_s": statistics.median(stu_times),
        "student_over_plain_epoch": statistics.median(stu_times) / statistics.median(erm_times),
        "erm_total_s": erm_total,
        "fairdi_total_s": fairdi_total,
        "teachers_s": t_teach,
        "cache_s": t_cache,
        "pipeline_over_erm": fairdi_total / erm_total,
    }
    return out


def timing_only(seed, datalist, args, device):
    """The cost part alone: interleaved plain/student epochs, with in-process loading and with ``--num-workers``.

    The teachers are freshly initialised (not trained): the cost of a student epoch depends only on the shape of
    the cached maps, not on their values. Used to re-measure the cost without the ~10 min of training per seed.
    """
    set_determinism(seed)
    train_items = load_fair_datalist(datalist, "training")[0]
    det, aug = Compose(DET), Compose(DET + RAND)
    train_ds = CacheDataset(train_items, aug, progress=False)
    teachers = GroupTeachers([_net(device), _net(device)]).eval()
    student_ds = CacheDataset(
        cache_teacher_outputs(teachers, train_items, det, device=device, batch_size=64), aug, progress=False
    )
    out = {}
    for workers in sorted({0, args.num_workers}):
        inter = _interleaved_epoch_times(train_ds, student_ds, args, device, num_workers=workers)
        out[f"workers{workers}"] = {
            "plain_epoch_s": statistics.median(inter["plain"]),
            "student_epoch_s": statistics.median(inter["student"]),
            "student_over_plain_epoch_interleaved": statistics.median(inter["student"])
            / statistics.median(inter["plain"]),
        }
    return out


def main():
    global NET_CHANNELS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--data-dir", default=None, help="synthetic data folder (default: a temporary one)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--teacher-epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--teacher-lr", type=float, default=5e-4)
    ap.add_argument("--temperature", type=float, default=1.5)
    ap.add_argument("--lambda-kd", type=float, default=0.5)
    ap.add_argument("--selection", default="worst_group_dice")
    ap.add_argument("--timing-rounds", type=int, default=4, help="alternated plain/student epochs for the cost")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--num-workers",
        type=int,
        default=1,
        help="DataLoader workers of the second cost measurement of --timing-only (the first uses 0)",
    )
    ap.add_argument(
        "--channels",
        type=int,
        nargs="+",
        default=list(NET_CHANNELS),
        help="UNet channels of both arms (default: the bundle's 16 32 64)",
    )
    ap.add_argument(
        "--timing-only",
        action="store_true",
        help="only the interleaved epoch cost (untrained teachers), in-process and with --num-workers",
    )
    ap.add_argument("--out", default=None)
    ap.add_argument("--merge", nargs="+", default=None, help="combine the --out files of single-seed runs")
    args = ap.parse_args()
    NET_CHANNELS = tuple(args.channels)
    if args.merge:
        runs = {}
        for f in args.merge:
            part = json.loads(Path(f).read_text())
            runs.update({int(k): v for k, v in part["per_seed"].items()})
            base_args = part["args"]
        _report(runs, sorted(runs), base_args, args.out)
        return
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="fairdi_seg_bench_")
    datalist = ensure_synthetic_dataset(data_dir, task="segmentation")  # default parameters
    if args.timing_only:
        runs = {s: timing_only(s, datalist, args, device) for s in args.seeds}
        _report(runs, args.seeds, vars(args), args.out, methods=tuple(runs[args.seeds[0]]))
        return
    runs = {}
    for s in args.seeds:
        t = time.perf_counter()
        runs[s] = run_seed(s, datalist, args, device)
        print(f"seed {s} done in {time.perf_counter() - t:.0f}s: {json.dumps(runs[s])}", flush=True)
    _report(runs, args.seeds, vars(args), args.out)


if __name__ == "__main__":
    main()
