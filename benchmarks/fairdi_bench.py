# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""FairDi vs plain training (ERM) on monai-fair's default synthetic classification data, over several seeds.

For each training seed, in one process (same data, same network, same transforms, same model selection):

* **ERM**: a 2D ResNet-10 trained with cross-entropy for ``--epochs`` epochs;
* **FairDi**: baseline (FIS loss, ``--epochs``) -> one teacher per group fine-tuned from it on its own group's data
  (``--teacher-epochs``) -> student with own-group distillation + FIS (``--epochs``), teachers' outputs cached.

Both select the epoch with the best ``--selection`` value on the validation split and are scored on the test
split with :func:`monai_fair.metrics.compute_group_classification_metrics`. Cost: the student's median epoch
time divided by ERM's median epoch time (same run; validation excluded), and FairDi's whole pipeline
(baseline + teachers + caching + student) relative to ERM's.

Run::

    python benchmarks/fairdi_bench.py --seeds 0 1 2 --out docs/benchmarks/fairdi_results.json
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from monai.data import CacheDataset, DataLoader
from monai.networks.nets import Classifier, resnet10
from monai.transforms import (
    Compose,
    EnsureChannelFirstd,
    EnsureTyped,
    Lambdad,
    LoadImaged,
    RandFlipd,
    RandRotate90d,
    ScaleIntensityd,
)
from monai.utils import set_determinism

from monai_fair.data import ensure_synthetic_dataset, load_fair_datalist
from monai_fair.engines import GroupSupervisedTrainer
from monai_fair.methods.fairdi import (
    FairDistillationLoss,
    FairDiStudentTrainer,
    FairIdentityScalingLoss,
    cache_teacher_outputs,
    train_group_teachers,
)
from monai_fair.metrics import compute_group_classification_metrics

DET = [
    LoadImaged("image", image_only=True),
    EnsureChannelFirstd("image"),
    Lambdad("image", lambda x: x[..., 0] if x.ndim == 4 and x.shape[-1] == 1 else x),
    ScaleIntensityd("image"),
    EnsureTyped(["image", "label", "group"], track_meta=False),
]
FAIRNESS = ("worst_group_auc", "es_auc", "worst_group_accuracy", "es_accuracy")
RAND = [RandFlipd("image", prob=0.5, spatial_axis=1), RandRotate90d("image", prob=0.5)]


NETWORK = "small"
IMAGE_SIZE = 64


def _net(device):
    """The network of both arms: MONAI ``resnet10`` (the bundle's) or a small MONAI ``Classifier`` CNN."""
    if NETWORK == "resnet10":
        return resnet10(spatial_dims=2, n_input_channels=3, num_classes=2).to(device)
    return Classifier(
        in_shape=(3, IMAGE_SIZE, IMAGE_SIZE), classes=2, channels=(8, 16, 32, 64), strides=(2, 2, 2, 2), num_res_units=1
    ).to(device)


def _epoch_timer(trainer):
    from ignite.engine import Events

    times: list[float] = []

    def _record(engine):
        times.append(engine.state.times["EPOCH_COMPLETED"])
        print(f"  {type(engine).__name__} epoch {engine.state.epoch}: {times[-1]:.1f}s", flush=True)

    trainer.add_event_handler(Events.EPOCH_COMPLETED, _record)
    return times


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


def _test(net, test_loader, device):
    net.eval()
    scores, ys, gs = [], [], []
    with torch.no_grad():
        for b in test_loader:
            scores.append(torch.softmax(net(b["image"].to(device)), 1)[:, 1].cpu())
            ys.append(b["label"].reshape(-1))
            gs.append(b["group"].reshape(-1))
    return compute_group_classification_metrics(
        torch.cat(scores).numpy(), torch.cat(ys).numpy(), torch.cat(gs).numpy(), num_groups=2
    )


def _summary(res):
    f, o, g = res["fairness"], res["overall"], res["groups"]
    out = {
        "accuracy": o["accuracy"],
        "auc": o["auc"],
        "auc_gap": f["auc_gap"],
        "accuracy_gap": f["accuracy_gap"],
        "worst_group_auc": f["worst_group_auc"],
        "worst_group_accuracy": f["worst_group_accuracy"],
        "es_auc": f["es_auc"],
        "eodds": f["eodds"],
    }
    for k, v in g.items():
        out[f"auc_g{k}"] = v["auc"]
        out[f"accuracy_g{k}"] = v["accuracy"]
    return {k: float(v) for k, v in out.items()}


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
        torch.nn.CrossEntropyLoss(),
        args.lr,
        args.epochs,
        args.selection,
        device,
    )
    erm_total = time.perf_counter() - t0
    out["erm"] = _summary(_test(erm, test_loader, device))

    # FairDi: stage 0 baseline (FIS)
    set_determinism(seed)
    t0 = time.perf_counter()
    base = _net(device)
    _train(
        GroupSupervisedTrainer,
        base,
        DataLoader(train_ds, batch_size=args.batch_size, shuffle=True),
        val_loader,
        FairIdentityScalingLoss(c=0.5),
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
            init_path=f"{tmp}/baseline.pt",
            epochs=args.teacher_epochs,
            batch_size=args.batch_size,
            learning_rate=args.teacher_lr,
            min_group_size=20,
            device=device,
        )
        t_teach = time.perf_counter() - t_teach
    t_cache = time.perf_counter()
    cached = cache_teacher_outputs(teachers, train_items, det, device=device, batch_size=64)
    t_cache = time.perf_counter() - t_cache
    student_ds = CacheDataset(cached, aug, progress=False)
    set_determinism(seed)
    student = _net(device)
    loss = FairDistillationLoss(temperature=args.temperature, lambda_kd=args.lambda_kd, supervised="fis")
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
        out["teachers_per_group_test"][f"teacher{k}_auc_on_own_group"] = float(res["groups"][k]["auc"])
    out["cost"] = {
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


def _mean_std(values):
    v = np.asarray(values, float)
    return float(np.nanmean(v)), float(np.nanstd(v, ddof=1)) if len(v) > 1 else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--data-dir", default=None, help="synthetic data folder (default: a temporary one)")
    ap.add_argument("--n-samples", type=int, default=800)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--teacher-epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--teacher-lr", type=float, default=5e-4)
    ap.add_argument("--temperature", type=float, default=1.5)
    ap.add_argument("--lambda-kd", type=float, default=0.95)
    ap.add_argument("--selection", default="worst_group_auc")
    ap.add_argument("--network", choices=["small", "resnet10"], default="small")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    ap.add_argument("--merge", nargs="+", default=None, help="combine the --out files of single-seed runs")
    args = ap.parse_args()
    if args.merge:
        runs = {}
        for f in args.merge:
            part = json.loads(Path(f).read_text())
            runs.update({int(k): v for k, v in part["per_seed"].items()})
            base_args = part["args"]
        _report(runs, sorted(runs), base_args, args.out)
        return
    torch.set_num_threads(args.threads)
    global NETWORK, IMAGE_SIZE
    NETWORK, IMAGE_SIZE = args.network, args.image_size
    device = torch.device("cpu")
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="fairdi_bench_")
    datalist = ensure_synthetic_dataset(
        data_dir, task="classification", n_samples=args.n_samples, image_size=args.image_size, seed=0
    )
    runs = {}
    for s in args.seeds:
        t = time.perf_counter()
        runs[s] = run_seed(s, datalist, args, device)
        print(f"seed {s} done in {time.perf_counter() - t:.0f}s: {json.dumps(runs[s])}", flush=True)
    _report(runs, args.seeds, vars(args), args.out)


def _report(runs, seeds, args, out, methods=("erm", "fairdi_baseline", "fairdi", "cost")):
    """Mean and spread over ``seeds`` of every number of each ``methods`` entry; printed, and written to ``out``."""
    table = {}
    for method in methods:
        table[method] = {k: _mean_std([runs[s][method][k] for s in seeds]) for k in runs[seeds[0]][method]}
    result = {"args": args, "per_seed": runs, "mean_std": table}
    print(json.dumps(table, indent=1))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
