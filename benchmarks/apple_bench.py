# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""APPLE benchmark, the settling experiment: does APPLE make a deployed segmentor's quality fairer across groups
(the paper's claim: worst-group Dice, Dice gap, ES-Dice), paired with that deployed model and with the beta = 0
control (the same perturber with no adversary)?

Per seed (all arms of a seed in one process, on the same data):

1. data: monai-fair's synthetic ultrasound segmentation, by default the ``label_noise`` scenario
   (``monai_fair.data.synthetic``): group F's training and validation masks are coarse annotations, its test masks
   clean, and F carries a visible cue: the deployed model's gap is one that group information explains.
   ``--scenario irreducible`` is the negative control (information lost: no latent perturbation should help);
   ``shortcut`` and ``underrep`` are the other scenarios;
2. the deployed segmentor (MONAI ``UNet`` 16-32-64-128 and/or the SAM-like model) is trained with DiceCE, frozen;
3. for every preset (``--presets``: ``paper`` = encoder-decoder perturber, Linear-BN discriminator, FAAP's two-part
   term; ``compact`` = the two-block perturber with the uniform-posterior term; read from the bundle's ``presets``)
   and every ``beta`` (default 0 = the control, and 1), a fresh perturber and discriminator are trained with
   :class:`monai_fair.methods.apple.AppleTrainer`; ``--consistency`` adds the variant whose segmentation term keeps
   the deployed model's own prediction (``seg_target="deployed"``), which isolates the adversary;
4. headline figures on the test split, each paired with the deployed model of the same seed on the same images
   (``d_<figure>`` with its paired-bootstrap 95 % interval ``d_<figure>_lo/_hi``,
   :func:`monai_fair.metrics.compare_models`); the harness adds the paired differences over seeds (arm - deployed,
   arm - its beta-0 control). Secondary: Dice overall / per group, the discriminator's group AUC and balanced
   accuracy (last training epoch, and on test latents); the privacy probe (fresh linear and MLP probes fitted on
   validation latents, scored on test latents: AUC, balanced accuracy; ``monai_fair.methods.apple.privacy_probe``);
   the relative perturbation size ``mean(delta^2) / mean(f_o^2)``; the inference latency with / without the
   perturbers (interleaved, median ratio, batch 8); ``informative_features``: the fraction of single pooled latent
   features (channel means and maxima) whose group AUC on the test split is >= 0.9 or <= 0.1 (how redundantly the
   latent encodes the group).

Optional arms: ``--skips`` (U-Net bottleneck *and* skip connections perturbed, at ``--skip_betas``), and
``--controls`` (the probe on each skip site of the deployed U-Net, to see where the group information comes from).

Usage (harness flags: ``--seeds``, ``--out``, ``--quick``, ``--threads``)::

    python benchmarks/apple_bench.py --seeds 0 1 2 3 4 --consistency --out docs/benchmarks --name apple_settling
    python benchmarks/apple_bench.py --seeds 0 1 2 3 4 --scenario irreducible --out docs/benchmarks \
        --name apple_settling_irreducible
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from harness import benchmark_parser, interleaved_timing, run_benchmark
from monai.losses import DiceCELoss
from monai.networks.nets import UNet
from scipy.stats import rankdata

from monai_fair.data.synthetic import synthesize_segmentation_arrays
from monai_fair.methods.apple import (
    HEADLINE_FIGURES,
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
    make_perturbers,
    privacy_probe,
    unet_skip_modules,
)
from monai_fair.metrics import compare_models, compute_group_segmentation_metrics
from monai_fair.metrics.cumulative import compute_per_image_dice_iou

GROUPS = ("F", "M")
#: the bundle's presets (one source of truth for the perturber, discriminator and privacy term of each)
PRESETS = json.loads((Path(__file__).parents[1] / "bundles/apple_segmentation/configs/train.json").read_text())[
    "presets"
]


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
def evaluate(wrapped: PerturbedSegmentor, data, disc: torch.nn.Module | None = None) -> dict[str, Any]:
    """Test-split Dice per group, gap, ES-Dice; relative perturbation; the discriminator's AUC on these latents;
    the per-image Dice/IoU under ``"_per_image"`` (for the paired comparison, not a figure)."""
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
    out: dict[str, Any] = {"dice": float(r["overall"]["dice"]), "rel_perturbation": float(torch.stack(rel).mean())}
    out["_per_image"] = (dice.numpy(), iou.numpy())
    for gid, v in r["groups"].items():
        out[f"dice_{GROUPS[int(gid)]}"] = float(v["dice"])
    out["dice_gap"] = float(r["fairness"]["dice_gap"])
    out["es_dice"] = float(r["fairness"]["es_dice"])
    out["worst_group_dice"] = float(r["fairness"]["worst_group_dice"])
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


def paired_headline(deployed: dict[str, Any], arm: dict[str, Any], group: torch.Tensor, seed: int, args) -> dict:
    """``d_<figure>`` (arm - deployed) of the headline figures with paired-bootstrap 95 % intervals, on one seed."""
    (db, ib), (da, ia) = deployed["_per_image"], arm["_per_image"]
    res = compare_models(
        None, group.numpy(), db, da, task="segmentation", base_iou=ib, other_iou=ia, num_groups=2,
        group_names=list(GROUPS), min_group_size=1, n_bootstrap=args.n_bootstrap, seed=seed,
    )  # fmt: skip
    out = {}
    for fig in HEADLINE_FIGURES:
        e = next(f for f in res["figures"] if f["figure"] == fig and f["scope"] != "group")
        out[f"d_{fig}"], (out[f"d_{fig}_lo"], out[f"d_{fig}_hi"]) = e["difference"], e["ci"]
    return out


def train_apple(
    base, modules, channels, data, beta: float, seed: int, args, preset: str = "compact", seg_target: str = "label"
) -> dict[str, Any]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    settings = PRESETS[preset]
    if preset == "compact" and (args.hidden is not None or args.num_blocks != 2):
        settings = {
            **settings,
            "perturber": {"arch": "compact", "hidden_channels": args.hidden, "num_blocks": args.num_blocks},
        }
    perturbers = make_perturbers(channels, **settings["perturber"])
    wrapped = PerturbedSegmentor(base, perturbers, modules)
    disc = AttributeDiscriminator(channels, 2, **settings["discriminator"])
    trainer = AppleTrainer(
        device=torch.device("cpu"),
        max_epochs=args.apple_epochs,
        train_data_loader=batches(data["train"], 16, rng),
        network=wrapped,
        optimizer=torch.optim.Adam(wrapped.perturbers.parameters(), args.apple_lr),
        loss_function=PerturberLoss(2, beta=beta, gamma=args.gamma, privacy=args.privacy or settings["privacy"]),
        discriminator=disc,
        discriminator_optimizer=torch.optim.Adam(disc.parameters(), args.d_lr, weight_decay=1e-4),
        discriminator_loss_function=DiscriminatorLoss(2),
        n_discriminator_steps=args.n_d,
        seg_target=seg_target,
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
    out["latency_ratio"] = latency_ratio(wrapped, data["test"][0][:8], args.latency_reps) if args.latency_reps else 0.0
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
    figures: dict[str, dict[str, Any]] = {}
    for model in args.models:
        base, modules, channels, skips, skip_channels = build(model, args.image_size)
        t0 = time.perf_counter()
        lr = 1e-3 if model == "unet" else 5e-4
        train_base(base, data["train"], args.base_epochs, lr, np.random.default_rng(seed))
        base.requires_grad_(False)
        state0 = {k: v.clone() for k, v in base.state_dict().items()}
        ref = PerturbedSegmentor(base, [LatentPerturber(c) for c in channels], modules)
        ref.set_perturbation_enabled(False)
        deployed = evaluate(ref, data["test"])
        figures[f"{model}_deployed"] = {
            **deployed,
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
        for preset in args.presets:
            targets = ("label", "deployed") if args.consistency else ("label",)
            for target in targets:
                for beta in args.betas if model == "unet" else args.sam_betas:
                    name = arm_name(model, preset, beta, target)
                    arm = train_apple(base, modules, channels, data, beta, seed, args, preset, target)
                    arm.update(paired_headline(deployed, arm, data["test"][2], seed, args))
                    figures[name] = arm
                    print(name, {k: round(v, 3) for k, v in arm.items() if k[0] != "_"}, flush=True)
        if model == "unet" and args.skips:
            for beta in args.skip_betas:
                arm = train_apple(base, modules + skips, channels + skip_channels, data, beta, seed, args)
                figures[f"unet_skips_beta{_tag(beta)}"] = arm
                print("unet+skips", beta, {k: round(v, 3) for k, v in arm.items() if k[0] != "_"}, flush=True)
        assert all(torch.equal(state0[k], v) for k, v in base.state_dict().items()), "deployed weights changed"
    for arm in figures.values():
        arm.pop("_per_image", None)
    return figures


def arm_name(model: str, preset: str, beta: float, seg_target: str = "label") -> str:
    """``<model>_<preset>[_consistency]_beta<beta>``."""
    return f"{model}_{preset}{'_consistency' if seg_target == 'deployed' else ''}_beta{_tag(beta)}"


def main() -> None:
    ap = benchmark_parser(__doc__)
    ap.add_argument("--name", default="apple_settling", help="output name (<out>/<name>.json / .md)")
    ap.add_argument("--scenario", default="label_noise")
    ap.add_argument("--strength", type=float, default=1.0)
    ap.add_argument("--n_samples", type=int, default=300)
    ap.add_argument("--image_size", type=int, default=64)
    ap.add_argument("--base_epochs", type=int, default=12)
    ap.add_argument("--apple_epochs", type=int, default=8)
    ap.add_argument("--models", dest="models", nargs="+", default=["unet"], choices=["unet", "sam_like"])
    ap.add_argument("--presets", nargs="+", default=["paper", "compact"], choices=sorted(PRESETS))
    ap.add_argument("--consistency", action="store_true", help="add the consistency arms (seg_target='deployed')")
    ap.add_argument("--betas", type=float, nargs="+", default=[0.0, 1.0], help="0 is the no-adversary control")
    ap.add_argument("--sam_betas", type=float, nargs="+", default=[0.0, 1.0])
    ap.add_argument("--skips", action="store_true", help="also perturb the U-Net's skip connections")
    ap.add_argument("--skip_betas", type=float, nargs="+", default=[1.0, 10.0])
    ap.add_argument("--controls", action="store_true", help="probe each skip site of the deployed U-Net")
    ap.add_argument("--gamma", type=float, default=0.1)
    ap.add_argument("--privacy", default=None, help="privacy term (default: the preset's)")
    ap.add_argument("--n_d", type=int, default=2, help="discriminator steps per perturber step")
    ap.add_argument("--d_lr", type=float, default=1e-3)
    ap.add_argument("--apple_lr", type=float, default=1e-3)
    ap.add_argument("--hidden", type=int, default=None, help="compact perturber width (default: the latent's)")
    ap.add_argument("--num_blocks", type=int, default=2, help="compact perturber blocks")
    ap.add_argument("--n_bootstrap", type=int, default=200)
    ap.add_argument("--latency_reps", type=int, default=30, help="interleaved repeats of the latency ratio")
    args = ap.parse_args()
    if args.quick:
        args.n_samples, args.base_epochs, args.apple_epochs, args.image_size = 60, 1, 1, 32
        args.betas, args.sam_betas, args.skip_betas, args.n_bootstrap = [0.0, 1.0], [1.0], [1.0], 20
        args.latency_reps = 3
    pairs = []
    targets = ("label", "deployed") if args.consistency else ("label",)
    for model in args.models:
        betas = args.betas if model == "unet" else args.sam_betas
        for preset in args.presets:
            for target in targets:
                for b in betas:
                    pairs.append((arm_name(model, preset, b, target), f"{model}_deployed"))
                    if b != 0 and 0.0 in betas:  # the adversary's own effect: against the same perturber at beta 0
                        pairs.append((arm_name(model, preset, b, target), arm_name(model, preset, 0.0, target)))
    run_benchmark(args.name, run_seed, args, pairs=pairs)


if __name__ == "__main__":
    main()
