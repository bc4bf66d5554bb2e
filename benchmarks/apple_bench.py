# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""APPLE benchmark: does the latent perturber remove the group from what the frozen decoder sees, and does that
change Dice per group? A beta sweep on a scenario where APPLE's mechanism applies, over seeds.

Per seed (all arms of a seed in one process, on the same data):

1. data: monai-fair's synthetic ultrasound segmentation, by default the ``shortcut`` scenario
   (``monai_fair.data.synthetic``): a visible group cue (a bright near-field band for group F) and, in the training
   and validation splits, lesions at a group-specific depth (with a lesion-like distractor cyst at the mirrored
   depth); at test the lesions lie anywhere. A deployed segmentor trained on it can use the low-dimensional group
   cue to decide where to look: the situation APPLE is designed for;
2. the deployed segmentor (MONAI ``UNet`` 16-32-64-128 and/or the SAM-like model) is trained with DiceCE, frozen;
3. for every ``beta`` of the sweep, a fresh perturber (default width = latent width) and discriminator are
   trained with :class:`monai_fair.methods.apple.AppleTrainer` (group-balanced discriminator loss, ``k`` steps per
   perturber step, own learning rate; privacy term = cross-entropy to the uniform posterior);
4. figures on the test split: Dice overall / per group, Dice gap and ES-Dice
   (``monai_fair.metrics.compute_group_segmentation_metrics``); the discriminator's group AUC and balanced
   accuracy (last training epoch, and on test latents); the privacy probe (fresh linear and MLP probes fitted on
   validation latents, scored on test latents: AUC, balanced accuracy; ``monai_fair.methods.apple.privacy_probe``);
   the relative perturbation size ``mean(delta^2) / mean(f_o^2)``; the inference latency with / without the
   perturbers (interleaved, median ratio, batch 8); ``informative_features``: the fraction of single pooled latent
   features (channel means and maxima) whose group AUC on the test split is >= 0.9 or <= 0.1 (how redundantly the
   latent encodes the group).

Optional arms: ``--skips`` (U-Net bottleneck *and* skip connections perturbed, at ``--skip_betas``), and
``--controls`` (the probe on the bottleneck of the deployed model with the group cue band cropped away, to see
where the group information comes from).

Usage (harness flags: ``--seeds``, ``--out``, ``--quick``, ``--threads``)::

    python benchmarks/apple_bench.py --seeds 0 1 2 --out docs/benchmarks --name apple_comparison
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from harness import benchmark_parser, interleaved_timing, run_benchmark
from monai.losses import DiceCELoss
from monai.networks.nets import UNet
from scipy.stats import rankdata

from monai_fair.data.synthetic import synthesize_segmentation_arrays
from monai_fair.methods.apple import (
    AppleKeys,
    AppleTrainer,
    AttributeDiscriminator,
    DiscriminatorLoss,
    LatentPerturber,
    PerturbedSegmentor,
    PerturberLoss,
    SamLikeSegmentor,
    collect_pooled_latents,
    compute_attribute_recoverability,
    default_latent_module,
    privacy_probe,
    unet_skip_modules,
)
from monai_fair.metrics import compute_group_segmentation_metrics
from monai_fair.metrics.cumulative import compute_per_image_dice_iou

GROUPS = ("F", "M")


def build(model: str, size: int) -> tuple[torch.nn.Module, list[str], list[int], list[str], list[int]]:
    """Deployed network, its latent module(s) and channels, and (U-Net) its skip modules and channels."""
    if model == "unet":
        net = UNet(2, 1, 2, channels=(16, 32, 64, 128), strides=(2, 2, 2), num_res_units=1, norm="batch")
        return net, [default_latent_module(net)], [128], unet_skip_modules(net), [16, 32, 64]
    net = SamLikeSegmentor(
        in_channels=1, img_size=size, patch_size=4, embed_dim=64, depth=2, num_heads=4, prompt_dim=32
    )
    return net, ["image_encoder"], [32], [], []


def load_data(seed: int, args) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    arr = synthesize_segmentation_arrays(
        scenario=args.scenario, strength=args.strength, n_samples=args.n_samples, image_size=args.image_size, seed=seed
    )
    x = torch.as_tensor(arr["image"]).float()[:, None] / 255.0
    y = torch.as_tensor(arr["mask"]).float()[:, None]
    g = torch.as_tensor(arr["group"]).long()
    split = torch.as_tensor(arr["split"])
    return {name: (x[split == i], y[split == i], g[split == i]) for i, name in enumerate(("train", "val", "test"))}


def batches(data, bs: int, rng: np.random.Generator | None = None) -> list[dict[str, torch.Tensor]]:
    x, y, g = data
    idx = rng.permutation(len(x)) if rng is not None else np.arange(len(x))
    return [{"image": x[i], "label": y[i], "group": g[i]} for i in (idx[k : k + bs] for k in range(0, len(x), bs))]


def train_base(net: torch.nn.Module, data, epochs: int, lr: float, rng: np.random.Generator) -> None:
    opt = torch.optim.Adam(net.parameters(), lr)
    loss_fn = DiceCELoss(softmax=True, to_onehot_y=True, lambda_dice=0.8, lambda_ce=0.2)
    net.train()
    for _ in range(epochs):
        for b in batches(data, 16, rng):
            opt.zero_grad()
            loss_fn(net(b["image"]), b["label"]).backward()
            opt.step()
    net.eval()


@torch.no_grad()
def evaluate(wrapped: PerturbedSegmentor, data, disc: torch.nn.Module | None = None) -> dict[str, float]:
    """Test-split Dice per group, gap, ES-Dice; relative perturbation; the discriminator's AUC on these latents."""
    x, y, g = data
    preds, logits, rel = [], [], []
    wrapped.eval()
    for k in range(0, len(x), 32):
        out = wrapped(x[k : k + 32])
        preds.append(out.argmax(1, keepdim=True))
        deltas = wrapped.perturbations()
        rel.append(torch.stack([d.pow(2).mean() / f.pow(2).mean() for d, f in zip(deltas, wrapped.latents_in)]).mean())
        if disc is not None:
            logits.append(disc(wrapped.latents_out))
    pred = torch.cat(preds)
    onehot = lambda t: torch.cat([1 - t, t], 1).float()  # noqa: E731
    dice, iou = compute_per_image_dice_iou(onehot(pred), onehot(y))
    r = compute_group_segmentation_metrics(dice, iou, g, num_groups=2, group_names=list(GROUPS))
    out = {"dice": float(r["overall"]["dice"]), "rel_perturbation": float(torch.stack(rel).mean())}
    for gid, v in r["groups"].items():
        out[f"dice_{GROUPS[int(gid)]}"] = float(v["dice"])
    out["dice_gap"] = float(r["fairness"]["dice_gap"])
    out["es_dice"] = float(r["fairness"]["es_dice"])
    if disc is not None:
        rec = compute_attribute_recoverability(torch.cat(logits), g, 2)
        out["disc_test_auc"], out["disc_test_bal_acc"] = rec["auc"], rec["balanced_accuracy"]
    return out


def informative_fraction(features: torch.Tensor, group: torch.Tensor, margin: float = 0.4) -> float:
    """Fraction of single pooled features whose group AUC is >= 0.5 + margin or <= 0.5 - margin (Mann-Whitney from
    mid-ranks, all columns at once)."""
    ranks = torch.as_tensor(rankdata(features.numpy(), axis=0))
    pos = group == 1
    n1, n0 = int(pos.sum()), int((~pos).sum())
    auc = (ranks[pos].sum(0) - n1 * (n1 + 1) / 2) / (n1 * n0)
    return float(((auc - 0.5).abs() >= margin).double().mean())


def probe_figures(wrapped: PerturbedSegmentor, val, test, perturbed: bool, seed: int, args) -> dict[str, float]:
    fit = collect_pooled_latents(wrapped, batches(val, 32), perturbed)
    score = collect_pooled_latents(wrapped, batches(test, 32), perturbed)
    res = privacy_probe(*fit, *score, 2, n_bootstrap=args.n_bootstrap, seed=seed)
    out = {"informative_features": informative_fraction(*score)}
    for kind, r in res.items():
        out[f"probe_{kind}_auc"], out[f"probe_{kind}_bal_acc"] = r["auc"], r["balanced_accuracy"]
        if "ci" in r:
            out[f"probe_{kind}_auc_lo"], out[f"probe_{kind}_auc_hi"] = r["ci"]["auc"]
    return out


def train_apple(base, modules, channels, data, beta: float, seed: int, args) -> dict[str, Any]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    perturbers = [LatentPerturber(c, num_blocks=args.num_blocks, hidden_channels=args.hidden) for c in channels]
    wrapped = PerturbedSegmentor(base, perturbers, modules)
    disc = AttributeDiscriminator(channels, 2)
    trainer = AppleTrainer(
        device=torch.device("cpu"),
        max_epochs=args.apple_epochs,
        train_data_loader=batches(data["train"], 16, rng),
        network=wrapped,
        optimizer=torch.optim.Adam(wrapped.perturbers.parameters(), args.apple_lr),
        loss_function=PerturberLoss(2, beta=beta, gamma=args.gamma, privacy=args.privacy),
        discriminator=disc,
        discriminator_optimizer=torch.optim.Adam(disc.parameters(), args.d_lr, weight_decay=1e-4),
        discriminator_loss_function=DiscriminatorLoss(2),
        n_discriminator_steps=args.n_d,
        one_group_batch="warn",
        decollate=False,
    )
    t0 = time.perf_counter()
    trainer.run()
    out = evaluate(wrapped, data["test"], disc)
    out["disc_train_auc"] = float(trainer.state.metrics[AppleKeys.DISCRIMINATOR_AUC])
    out["disc_train_bal_acc"] = float(trainer.state.metrics[AppleKeys.DISCRIMINATOR_BALANCED_ACCURACY])
    out["train_s"] = time.perf_counter() - t0
    out.update(probe_figures(wrapped, data["val"], data["test"], True, seed, args))
    out["latency_ratio"] = latency_ratio(wrapped, data["test"][0][:8], args.latency_reps)
    wrapped.remove_hooks()
    return out


@torch.no_grad()
def latency_ratio(wrapped: PerturbedSegmentor, x: torch.Tensor, repeats: int) -> float:
    """Inference time with the perturbers / without (hooks pass ``f_o`` through), interleaved, median ratio."""
    wrapped.eval()

    def run(enabled: bool):
        wrapped.set_perturbation_enabled(enabled)
        wrapped(x)

    timing = interleaved_timing({"base": lambda: run(False), "apple": lambda: run(True)}, "base", repeats=repeats)
    wrapped.set_perturbation_enabled(True)
    return float(timing["apple"]["median_ratio"])


def _tag(beta: float) -> str:
    return f"{beta:g}".replace(".", "p")


def run_seed(seed: int, args) -> dict[str, dict[str, float]]:
    data = load_data(seed, args)
    figures: dict[str, dict[str, float]] = {}
    for model in args.models:
        base, modules, channels, skips, skip_channels = build(model, args.image_size)
        t0 = time.perf_counter()
        lr = 1e-3 if model == "unet" else 5e-4
        train_base(base, data["train"], args.base_epochs, lr, np.random.default_rng(seed))
        base.requires_grad_(False)
        state0 = {k: v.clone() for k, v in base.state_dict().items()}
        ref = PerturbedSegmentor(base, [LatentPerturber(c) for c in channels], modules)
        ref.set_perturbation_enabled(False)
        figures[f"{model}_deployed"] = {
            **evaluate(ref, data["test"]),
            **probe_figures(ref, data["val"], data["test"], False, seed, args),
            "train_s": time.perf_counter() - t0,
        }
        if model == "unet" and args.controls:  # where does the group come from? probe each skip site alone
            for name, c in zip(skips, skip_channels):
                site = PerturbedSegmentor(base, [LatentPerturber(c)], [name])
                site.set_perturbation_enabled(False)
                f = probe_figures(site, data["val"], data["test"], False, seed, args)
                figures[f"{model}_deployed"][f"probe_linear_auc_{name}"] = f["probe_linear_auc"]
                site.remove_hooks()
        ref.remove_hooks()
        for beta in args.betas if model == "unet" else args.sam_betas:
            figures[f"{model}_beta{_tag(beta)}"] = train_apple(base, modules, channels, data, beta, seed, args)
            print(model, beta, {k: round(v, 3) for k, v in figures[f"{model}_beta{_tag(beta)}"].items()}, flush=True)
        if model == "unet" and args.skips:
            for beta in args.skip_betas:
                arm = train_apple(base, modules + skips, channels + skip_channels, data, beta, seed, args)
                figures[f"unet_skips_beta{_tag(beta)}"] = arm
                print("unet+skips", beta, {k: round(v, 3) for k, v in arm.items()}, flush=True)
        assert all(torch.equal(state0[k], v) for k, v in base.state_dict().items()), "deployed weights changed"
    return figures


def main() -> None:
    ap = benchmark_parser(__doc__)
    ap.add_argument("--name", default="apple_comparison", help="output name (<out>/<name>.json / .md)")
    ap.add_argument("--scenario", default="shortcut")
    ap.add_argument("--strength", type=float, default=1.0)
    ap.add_argument("--models", nargs="+", default=["unet", "sam_like"], choices=["unet", "sam_like"])
    ap.add_argument("--n_samples", type=int, default=300)
    ap.add_argument("--image_size", type=int, default=64)
    ap.add_argument("--base_epochs", type=int, default=12)
    ap.add_argument("--apple_epochs", type=int, default=8)
    ap.add_argument("--betas", type=float, nargs="+", default=[0.0, 0.3, 1.0, 3.0, 10.0])
    ap.add_argument("--sam_betas", type=float, nargs="+", default=[0.0, 1.0, 10.0])
    ap.add_argument("--skips", action="store_true", help="also perturb the U-Net's skip connections")
    ap.add_argument("--skip_betas", type=float, nargs="+", default=[1.0, 10.0])
    ap.add_argument("--controls", action="store_true", help="probe each skip site of the deployed U-Net")
    ap.add_argument("--gamma", type=float, default=0.1)
    ap.add_argument("--privacy", default="uniform_ce")
    ap.add_argument("--n_d", type=int, default=2, help="discriminator steps per perturber step")
    ap.add_argument("--d_lr", type=float, default=1e-3)
    ap.add_argument("--apple_lr", type=float, default=1e-3)
    ap.add_argument("--hidden", type=int, default=None, help="perturber width (default: the latent's)")
    ap.add_argument("--num_blocks", type=int, default=2)
    ap.add_argument("--n_bootstrap", type=int, default=200)
    ap.add_argument("--latency_reps", type=int, default=30, help="interleaved repeats of the latency ratio")
    args = ap.parse_args()
    if args.quick:
        args.n_samples, args.base_epochs, args.apple_epochs, args.image_size = 60, 1, 1, 32
        args.betas, args.sam_betas, args.skip_betas, args.n_bootstrap = [0.0, 1.0], [1.0], [1.0], 20
        args.latency_reps = 3
    pairs = [(f"unet_beta{_tag(b)}", "unet_deployed") for b in args.betas if "unet" in args.models]
    pairs += [(f"sam_like_beta{_tag(b)}", "sam_like_deployed") for b in args.sam_betas if "sam_like" in args.models]
    run_benchmark(args.name, run_seed, args, pairs=pairs)


if __name__ == "__main__":
    main()
