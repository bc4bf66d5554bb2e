# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""APPLE benchmark: fairness of a frozen segmentor alone vs with the trained latent perturber, privacy probe, latency.

For each seed: train the base segmentor (plain MONAI-style training, DiceCE), freeze it, train the APPLE perturber
with :class:`monai_fair.methods.apple.AppleTrainer`, and evaluate on the test split of monai-fair's synthetic biased
segmentation data:

* per-group Dice / IoU, ES-Dice, Dice gap, SER (``monai_fair.metrics.compute_group_segmentation_metrics``);
* privacy: a *fresh* :class:`monai_fair.methods.apple.AttributeDiscriminator` (probe) is trained on the training-set
  latents and its group AUC / balanced accuracy measured on the test-set latents, for ``f_o`` (before) and
  ``f_p`` (after);
* cost: inference latency of base + perturber divided by the base segmentor's, measured in one run
  (interleaved repeats, median), at the bundle's image size and at a larger one.

Usage::

    python benchmarks/apple_bench.py --seeds 0 1 2 --models unet sam_like --out docs/benchmarks/apple_results.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from monai.losses import DiceCELoss
from monai.networks.nets import BasicUNet, UNet
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, ScaleIntensityRanged
from monai.utils import set_determinism
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from monai_fair.data import ensure_synthetic_dataset, load_fair_datalist
from monai_fair.methods.apple import (
    AdversarialPrivacyLoss,
    AppleTrainer,
    AttributeDiscriminator,
    LatentPerturber,
    PerturbedSegmentor,
    SamLikeSegmentor,
)
from monai_fair.metrics import compute_group_segmentation_metrics
from monai_fair.metrics.group_segmentation import compute_per_image_dice_iou

VARIANTS = {
    "unet": dict(latent="model.1.submodule.1.submodule.1.submodule", channels=128, hidden=32, lr=1e-3),
    "sam_like": dict(latent="image_encoder", channels=32, hidden=16, lr=5e-4),
    # MONAI's default BasicUNet (features 32-32-64-128-256-32, ~2 M parameters): a standard-size deployed U-Net,
    # 16x-downsampled bottleneck `down_4`; used for the latency comparison (--latency_only --models basicunet)
    "basicunet": dict(latent="down_4", channels=256, hidden=32, lr=1e-3),
}


def build(model: str, size: int) -> torch.nn.Module:
    if model == "unet":
        return UNet(2, 1, 2, channels=(16, 32, 64, 128), strides=(2, 2, 2), num_res_units=1, norm="batch")
    if model == "basicunet":
        return BasicUNet(spatial_dims=2, in_channels=1, out_channels=2)
    return SamLikeSegmentor(
        in_channels=1, img_size=size, patch_size=4, embed_dim=64, depth=2, num_heads=4, prompt_dim=32
    )


def load_split(datalist: str, split: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    items, _ = load_fair_datalist(datalist, split=split)
    tf = Compose(
        [
            LoadImaged(["image", "label"], image_only=True),
            EnsureChannelFirstd(["image", "label"]),
            ScaleIntensityRanged("image", 0, 255, 0.0, 1.0, clip=True),
        ]
    )
    data = [tf(dict(d)) for d in items]
    x = torch.stack([torch.as_tensor(d["image"]).float() for d in data])
    y = torch.stack([torch.as_tensor(d["label"]).float() for d in data])
    g = torch.tensor([int(d["group"]) for d in items])
    return x, y, g


def batches(x, y, g, bs, rng, shuffle=True):
    idx = rng.permutation(len(x)) if shuffle else np.arange(len(x))
    return [{"image": x[i], "label": y[i], "group": g[i]} for i in (idx[k : k + bs] for k in range(0, len(x), bs))]


def train_base(net, x, y, g, epochs, lr, rng):
    opt = torch.optim.Adam(net.parameters(), lr)
    loss_fn = DiceCELoss(softmax=True, to_onehot_y=True, lambda_dice=0.8, lambda_ce=0.2)
    net.train()
    for _ in range(epochs):
        for b in batches(x, y, g, 16, rng):
            opt.zero_grad()
            loss_fn(net(b["image"]), b["label"]).backward()
            opt.step()
    net.eval()


@torch.no_grad()
def predict(net, x, bs=32):
    preds, lat = [], []
    for k in range(0, len(x), bs):
        out = net(x[k : k + bs])
        preds.append(out.argmax(1, keepdim=True))
        if isinstance(net, PerturbedSegmentor):
            lat.append(net.latents_out[0])
    return torch.cat(preds), (torch.cat(lat) if lat else None)


def seg_metrics(pred, y, g):
    onehot = lambda t: torch.cat([1 - t, t], 1).float()  # noqa: E731
    dice, iou = compute_per_image_dice_iou(onehot(pred), onehot(y))
    r = compute_group_segmentation_metrics(dice, iou, g, num_groups=2, group_names=["F", "M"])
    out = {"dice": float(r["overall"]["dice"]), "iou": float(r["overall"]["iou"])}
    for name, v in r["groups"].items():
        name = ["F", "M"][int(name)] if str(name).isdigit() else name
        out[f"dice_{name}"], out[f"iou_{name}"] = float(v["dice"]), float(v["iou"])
    for k in ("es_dice", "dice_gap", "ser", "worst_group_dice"):
        out[k] = float(r["fairness"][k])
    return out


def probe(f_train, g_train, f_test, g_test, seed, steps=300):
    """Fresh discriminator on frozen latents: test AUC and balanced accuracy of the group prediction."""
    torch.manual_seed(seed)
    d = AttributeDiscriminator(f_train.shape[1], 2)
    opt = torch.optim.Adam(d.parameters(), 1e-3, weight_decay=1e-4)
    w = torch.bincount(g_train, minlength=2).float()
    crit = torch.nn.CrossEntropyLoss(weight=w.sum() / (2 * w))  # balanced: the minority is 20 %
    for _ in range(steps):
        opt.zero_grad()
        crit(d(f_train), g_train).backward()
        opt.step()
    with torch.no_grad():
        p = torch.softmax(d(f_test), 1)[:, 1].numpy()
    return {
        "auc": float(roc_auc_score(g_test.numpy(), p)),
        "bal_acc": float(balanced_accuracy_score(g_test.numpy(), (p > 0.5).astype(int))),
    }


def latency(base, wrapped, size, reps=30, bs=8):
    x = torch.rand(bs, 1, size, size)
    tb, tw = [], []
    with torch.no_grad():
        for _ in range(3):
            base(x), wrapped(x)
        for _ in range(reps):
            t = time.perf_counter()
            wrapped.set_perturbation_enabled(False)
            wrapped(x)  # hooks present but pass-through: the deployed model alone
            tb.append(time.perf_counter() - t)
            wrapped.set_perturbation_enabled(True)
            t = time.perf_counter()
            wrapped(x)
            tw.append(time.perf_counter() - t)
    return statistics.median(tw) / statistics.median(tb), statistics.median(tb) * 1e3


def run_one(model, seed, data, args):
    set_determinism(seed)
    rng = np.random.default_rng(seed)
    (xtr, ytr, gtr), (xte, yte, gte) = data
    size = xtr.shape[-1]
    v = VARIANTS[model]
    base = build(model, size)
    t0 = time.perf_counter()
    train_base(base, xtr, ytr, gtr, args.base_epochs, v["lr"], rng)
    t_base = time.perf_counter() - t0
    sd0 = {k: t.clone() for k, t in base.state_dict().items()}
    pert = LatentPerturber(v["channels"], hidden_channels=args.hidden or v["hidden"], num_blocks=args.num_blocks)
    wrapped = PerturbedSegmentor(base, pert, v["latent"])
    wrapped.set_perturbation_enabled(False)
    pred0, lat_te0 = predict(wrapped, xte)
    _, lat_tr0 = predict(wrapped, xtr)
    before = seg_metrics(pred0, yte, gte)
    probe0 = probe(lat_tr0, gtr, lat_te0, gte, seed)
    wrapped.set_perturbation_enabled(True)
    disc = AttributeDiscriminator(v["channels"], 2)
    trainer = AppleTrainer(
        device=torch.device("cpu"),
        max_epochs=args.apple_epochs,
        train_data_loader=batches(xtr, ytr, gtr, 16, rng),
        network=wrapped,
        optimizer=torch.optim.Adam(wrapped.perturbers.parameters(), args.apple_lr),
        loss_function=AdversarialPrivacyLoss(2, beta=args.beta, alpha=args.alpha, gamma=args.gamma),
        discriminator=disc,
        discriminator_optimizer=torch.optim.Adam(disc.parameters(), args.apple_lr * 0.2, weight_decay=1e-4),
        n_discriminator_steps=args.n_d,
        one_group_batch="warn",
        decollate=False,
    )
    t0 = time.perf_counter()
    trainer.run()
    t_apple = time.perf_counter() - t0
    assert all(torch.equal(sd0[k], t) for k, t in base.state_dict().items()), "deployed weights changed"
    pred1, lat_te1 = predict(wrapped, xte)
    _, lat_tr1 = predict(wrapped, xtr)
    after = seg_metrics(pred1, yte, gte)
    probe1 = probe(lat_tr1, gtr, lat_te1, gte, seed)
    ratio, base_ms = latency(base, wrapped, size)
    ratio_big, base_ms_big = latency(base, wrapped, args.big_size, reps=10, bs=2) if model == "unet" else (None, None)
    return {
        "before": before,
        "after": after,
        "probe_before": probe0,
        "probe_after": probe1,
        "latency_ratio": ratio,
        "base_latency_ms": base_ms,
        "latency_ratio_big": ratio_big,
        "base_latency_ms_big": base_ms_big,
        "train_s_base": t_base,
        "train_s_apple": t_apple,
        "apple_over_base_train_epoch": (t_apple / args.apple_epochs) / (t_base / args.base_epochs),
    }


def mean_std(vals):
    vals = [v for v in vals if v is not None and not np.isnan(v)]
    if not vals:
        return "n/a"
    return f"{np.mean(vals):.3f} ± {np.std(vals, ddof=1) if len(vals) > 1 else 0.0:.3f}"


def latency_only(args):
    """Latency ratios alone (about 1 min): untrained weights (the values do not change the cost), ``--reps`` interleaved
    repeats, for the default perturber and for each ``--light`` (hidden width, conv blocks) setting."""
    settings = [("default", None, 2)] + [(f"hidden{h}_blocks{b}", h, b) for h, b in args.light]
    out: dict = {}
    for model in args.models:
        v = VARIANTS[model]
        sizes = [(args.image_size, 8)] + ([(args.big_size, 2)] if model in ("unet", "basicunet") else [])
        for size, bs in sizes:
            for name, hidden, blocks in settings:
                ratios, base_ms = [], []
                for seed in args.seeds:
                    set_determinism(seed)
                    base = build(model, size).eval()
                    pert = LatentPerturber(v["channels"], hidden_channels=hidden or v["hidden"], num_blocks=blocks)
                    wrapped = PerturbedSegmentor(base, pert, v["latent"]).eval()
                    r, ms = latency(
                        base, wrapped, size, reps=args.reps if size == args.image_size else args.reps // 4, bs=bs
                    )
                    ratios.append(r)
                    base_ms.append(ms)
                key = f"{model}_{size}px_{name}"
                out[key] = {
                    "ratio": mean_std(ratios),
                    "base_ms": mean_std(base_ms),
                    "per_seed": ratios,
                    "perturber_params": sum(p.numel() for p in pert.parameters()),
                }
                print(
                    f"| {model} | {size} px, batch {bs} | {name} ({out[key]['perturber_params']} params) | "
                    f"{out[key]['ratio']} | {out[key]['base_ms']} ms |",
                    flush=True,
                )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"args": vars(args), "latency": out}, indent=1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--models", nargs="+", default=["unet", "sam_like"], choices=sorted(VARIANTS))
    ap.add_argument("--n_samples", type=int, default=300)
    ap.add_argument("--image_size", type=int, default=64)
    ap.add_argument("--big_size", type=int, default=256)
    ap.add_argument("--base_epochs", type=int, default=10)
    ap.add_argument("--apple_epochs", type=int, default=5)
    ap.add_argument("--apple_lr", type=float, default=1e-3)
    ap.add_argument("--beta", type=float, default=0.6)
    ap.add_argument("--alpha", type=float, default=0.15)
    ap.add_argument("--gamma", type=float, default=0.1)
    ap.add_argument("--n_d", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data_dir", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--hidden", type=int, default=None, help="perturber width (default: 32 U-Net, 16 SAM-like)")
    ap.add_argument("--num_blocks", type=int, default=2, help="perturber conv blocks")
    ap.add_argument("--latency_only", action="store_true", help="only the latency ratios (no training)")
    ap.add_argument("--reps", type=int, default=200, help="interleaved latency repeats of --latency_only")
    ap.add_argument(
        "--light",
        type=int,
        nargs=2,
        action="append",
        default=[[16, 1]],
        metavar=("HIDDEN", "BLOCKS"),
        help="extra perturber settings timed by --latency_only",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.latency_only:
        latency_only(args)
        return
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="apple_bench_")
    dl = ensure_synthetic_dataset(
        data_dir, task="segmentation", n_samples=args.n_samples, image_size=args.image_size, seed=0
    )
    data = (load_split(dl, "training"), load_split(dl, "test"))
    print(
        f"train {len(data[0][0])} images (F={int((data[0][2] == 0).sum())}), test {len(data[1][0])} "
        f"(F={int((data[1][2] == 0).sum())})",
        flush=True,
    )
    results = {}
    t_all = time.perf_counter()
    for model in args.models:
        results[model] = []
        for seed in args.seeds:
            r = run_one(model, seed, data, args)
            results[model].append(r)
            print(
                model,
                seed,
                json.dumps(
                    {
                        k: r[k]
                        for k in (
                            "before",
                            "after",
                            "probe_before",
                            "probe_after",
                            "latency_ratio",
                            "latency_ratio_big",
                        )
                    }
                ),
                flush=True,
            )
    print(f"total {time.perf_counter() - t_all:.0f} s")
    rows = ["dice", "iou", "dice_F", "dice_M", "iou_F", "iou_M", "es_dice", "dice_gap", "ser", "worst_group_dice"]
    for model, rs in results.items():
        print(f"\n### {model} (seeds {args.seeds}; mean ± std)\n")
        print("| metric | frozen model alone | with APPLE |\n|---|---|---|")
        for k in rows:
            print(f"| {k} | {mean_std([r['before'][k] for r in rs])} | {mean_std([r['after'][k] for r in rs])} |")
        for k in ("auc", "bal_acc"):
            print(
                f"| probe group {k} (latent) | {mean_std([r['probe_before'][k] for r in rs])} | "
                f"{mean_std([r['probe_after'][k] for r in rs])} |"
            )
        print(
            f"\nlatency ratio (with perturber / base), {args.image_size}px batch 8: "
            f"{mean_std([r['latency_ratio'] for r in rs])}; base {mean_std([r['base_latency_ms'] for r in rs])} ms"
        )
        if rs[0]["latency_ratio_big"] is not None:
            print(
                f"latency ratio at {args.big_size}px batch 2: {mean_std([r['latency_ratio_big'] for r in rs])}; "
                f"base {mean_std([r['base_latency_ms_big'] for r in rs])} ms"
            )
        print(f"APPLE epoch / base epoch training time: {mean_std([r['apple_over_base_train_epoch'] for r in rs])}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"args": vars(args), "results": results}, indent=1))


if __name__ == "__main__":
    main()
