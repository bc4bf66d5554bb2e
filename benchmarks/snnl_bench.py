# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""SNNL channel pruning (SCP) and FairPrune on monai-fair's synthetic biased data, plus the scoring speed-up.

Part 1 (speed): SNNL scores of a 512-channel layer (b=128 samples, 14x14 maps, as SCP's VGG-11 at 224 px),
vectorised (one chunked (C, b, b) computation) vs a per-channel Python loop of the same computation.

Part 2 (fairness), per seed: train a SmallVGGNet baseline (plain MONAI-style training with
GroupSupervisedTrainer), then (a) SNNL channel pruning with fine-tuning and FATE stopping
(SNNLChannelPruningHandler), (b) FairPrune on the same baseline (no fine-tuning). Test-split accuracy, macro-F1,
EOpp0, EOpp1, EOdds and per-group macro-F1; mean +- std over seeds; wall times as ratios to baseline training.

Usage::

    python benchmarks/snnl_bench.py --seeds 0 1 2 --out docs/benchmarks/snnl.md
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import tempfile
import time

import numpy as np
import torch
from monai.data import DataLoader
from monai.transforms import Activationsd, AsDiscreted, Compose, EnsureChannelFirst, LoadImage, ScaleIntensity
from sklearn.metrics import f1_score

from monai_fair.data import ensure_synthetic_dataset, load_fair_datalist
from monai_fair.engines import GroupSupervisedEvaluator, GroupSupervisedTrainer
from monai_fair.methods.snnl import (
    SNNLChannelPruningHandler,
    macro_f1_eodds,
    make_pruning_permanent,
    run_fairprune,
    snnl_channel_scores,
    snnl_per_anchor,
    stratified_batch_indices,
)
from monai_fair.methods.snnl.pruning import mask_channels, pruned_channels
from monai_fair.metrics import compute_group_classification_metrics
from monai_fair.networks import SmallVGGNet


class FineTuneOnlyControl(SNNLChannelPruningHandler):
    """Control arm: the same fine-tuning rounds, evaluations and FATE round selection as SNNL pruning, but no
    channel is pruned. Separates the effect of pruning from the effect of the extra fine-tuning."""

    def _prune_next(self) -> list[int]:
        self.round += 1
        return []


class RandomPruningControl(SNNLChannelPruningHandler):
    """Control arm: prune ``n_per_round`` channels chosen uniformly at random (seeded) instead of the lowest SNNL
    scores; everything else as SNNL pruning. Tells whether the SNNL ranking matters."""

    def __init__(self, *args, seed: int = 0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._rng = np.random.default_rng(seed)

    def _prune_next(self) -> list[int]:
        done = set(pruned_channels(self.network, self.layer_name))
        free = [c for c in range(self.layer.out_channels) if c not in done]
        chosen = sorted(int(c) for c in self._rng.choice(free, size=self.n_per_round, replace=False))
        mask_channels(self.network, self.layer_name, chosen)
        self.round += 1
        return chosen


def speed(repeats: int = 3) -> dict:
    g = torch.Generator().manual_seed(0)
    acts = torch.randn(128, 512, 14, 14, generator=g)
    groups = (torch.rand(128, generator=g) < 0.3).long()

    def loop():
        feats = acts.reshape(128, 512, -1)
        out = torch.zeros(512, dtype=torch.float64)
        for c in range(512):  # the reference: one SNNL per channel
            terms, valid = snnl_per_anchor(feats[:, c], groups)
            out[c] = terms[valid].double().sum()
        return out

    def vec():
        return snnl_channel_scores(acts, groups, chunk_size=128)[0]

    res = {}
    for name, fn in (("loop", loop), ("vectorised", vec)):
        fn()  # warm-up
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            val = fn()
            ts.append(time.perf_counter() - t0)
        res[name] = (min(ts), val)
    n_valid = int(snnl_channel_scores(acts, groups)[1])
    diff = float(((res["loop"][1] - res["vectorised"][1]) / n_valid).abs().max())
    # independent check: the differentiable masked-logsumexp path (used for training) on all channels at once
    feats = acts.reshape(128, 512, -1).transpose(0, 1).contiguous().requires_grad_(True)
    terms, valid = snnl_per_anchor(feats, groups)
    ref = terms.detach()[:, valid].double().sum(-1)
    diff_ref = float(((ref - res["vectorised"][1]) / n_valid).abs().max())
    return {
        "loop_s": res["loop"][0],
        "vec_s": res["vectorised"][0],
        "speedup": res["loop"][0] / res["vectorised"][0],
        "max_abs_diff_mean_score": diff,
        "max_abs_diff_vs_logsumexp_path": diff_ref,
    }


def load_split(datalist: str, split: str) -> list[dict]:
    items, _ = load_fair_datalist(datalist, split=split)
    load = Compose([LoadImage(image_only=True), EnsureChannelFirst(), ScaleIntensity()])
    out = []
    for it in items:
        img = torch.as_tensor(load(it["image"])).as_subclass(torch.Tensor).float()
        if img.ndim == 4 and img.shape[-1] == 1:
            img = img[..., 0]
        out.append({"image": img, "label": torch.tensor(int(it["label"])), "group": torch.tensor(int(it["group"]))})
    return out


@torch.no_grad()
def predict(net, data):
    net.eval()
    x = torch.stack([d["image"] for d in data])
    probs = torch.cat([net(x[i : i + 128]).softmax(1) for i in range(0, len(x), 128)])
    y = torch.stack([d["label"] for d in data])
    g = torch.stack([d["group"] for d in data])
    return probs, y, g


def test_metrics(net, data, num_groups):
    probs, y, g = predict(net, data)
    pred = probs.argmax(1)
    m = compute_group_classification_metrics(probs[:, 1], y, g, num_groups=num_groups)
    f1, eo = macro_f1_eodds(probs, y, g, num_groups)
    out = {
        "accuracy": float((pred == y).float().mean()),
        "macro_f1": f1,
        "eopp0": float(m["fairness"]["eopp0"]),
        "eopp1": float(m["fairness"]["eopp1"]),
        "eodds": eo,
    }
    for k in range(num_groups):  # per-group macro-F1 (SCP reports per-group F1)
        sel = g == k
        out[f"f1_group{k}"] = float(f1_score(y[sel], pred[sel], average="macro"))
    return out


def post():
    return Compose([Activationsd(keys="pred", softmax=True), AsDiscreted(keys="label", to_onehot=2)])


def run_seed(seed, train, val, test, args, num_groups):
    torch.manual_seed(seed)
    np.random.seed(seed)
    net = SmallVGGNet(channels=(16, 32, 64, 64))
    loader = DataLoader(train, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(seed))
    trainer = GroupSupervisedTrainer(
        device="cpu",
        max_epochs=args.epochs,
        train_data_loader=loader,
        network=net,
        optimizer=torch.optim.Adam(net.parameters(), 1e-3),
        loss_function=torch.nn.CrossEntropyLoss(),
        postprocessing=post(),
    )
    t0 = time.perf_counter()
    trainer.run()
    t_base = time.perf_counter() - t0
    base_state = copy.deepcopy(net.state_dict())
    res = {"baseline": test_metrics(net, test, num_groups)}

    # (a) SNNL channel pruning of the last conv + fine-tuning, FATE stopping on validation, and two controls with
    # the identical schedule: fine-tuning only (no pruning) and random channels; each arm starts from the baseline
    def prune_arm(handler_cls, **kw):
        m = SmallVGGNet(channels=(16, 32, 64, 64))
        m.load_state_dict(base_state)
        arm_loader = DataLoader(train, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(seed + 1))
        evaluator = GroupSupervisedEvaluator(
            device="cpu", val_data_loader=DataLoader(val, batch_size=128), network=m, postprocessing=post()
        )
        score_loader = DataLoader(
            train, batch_sampler=stratified_batch_indices([int(d["group"]) for d in train], 64, seed=seed)
        )
        ft = GroupSupervisedTrainer(
            device="cpu",
            max_epochs=1,
            train_data_loader=arm_loader,
            network=m,
            optimizer=torch.optim.SGD(m.parameters(), 0.01, momentum=0.9, nesterov=True, weight_decay=1e-5),
            loss_function=torch.nn.CrossEntropyLoss(),
            postprocessing=post(),
        )
        torch.manual_seed(seed + 1)
        pruner = handler_cls(
            m,
            "features.12",
            score_loader,
            evaluator,
            n_per_round=args.n_per_round,
            max_rounds=args.max_rounds,
            finetune_epochs=args.finetune_epochs,
            patience=args.max_rounds,
            keep_unpruned_if_best=False,
            num_groups=num_groups,
            **kw,
        )
        pruner.attach(ft)
        t0 = time.perf_counter()
        ft.run()
        out = test_metrics(m, test, num_groups)
        out["pruned"] = len(pruner.summary["pruned_channels"])
        return out, time.perf_counter() - t0

    res["snnl"], t_snnl = prune_arm(SNNLChannelPruningHandler)
    res["finetune_only"], _ = prune_arm(FineTuneOnlyControl)
    res["random_pruning"], _ = prune_arm(RandomPruningControl, seed=seed)

    # (b) FairPrune on the same baseline; unprivileged = group with the lower validation macro-F1
    net2 = SmallVGGNet(channels=(16, 32, 64, 64))
    net2.load_state_dict(base_state)
    vp, vy, vg = predict(net2, val)
    vf1 = [f1_score(vy[vg == k], vp.argmax(1)[vg == k], average="macro") for k in range(num_groups)]
    unpriv = int(np.argmin(vf1))
    priv = [k for k in range(num_groups) if k != unpriv]
    fp_batches = [
        {k: torch.stack([train[i][k] for i in b]) for k in ("image", "label", "group")}
        for b in stratified_batch_indices([int(d["group"]) for d in train], 64, num_batches=4, seed=seed)
    ]

    def val_eodds(m):
        return macro_f1_eodds(*predict(m, val), num_groups)[1]

    t0 = time.perf_counter()
    hist = run_fairprune(
        net2,
        fp_batches,
        val_eodds,
        num_groups,
        unpriv,
        priv,
        beta=0.2,
        prune_ratio=0.05,
        patience=5,
        max_iterations=args.fp_iterations,
    )
    t_fp = time.perf_counter() - t0
    make_pruning_permanent(net2)
    res["fairprune"] = test_metrics(net2, test, num_groups)
    best = min(hist, key=lambda h: h["metric"])
    res["fairprune"]["pruned"] = best["pruned_fraction"]
    res["time"] = {"baseline_s": t_base, "snnl_s": t_snnl, "fairprune_s": t_fp}
    return res


def fmt(vals):
    a = np.asarray(vals, dtype=float)
    return f"{np.nanmean(a):.4f} ± {np.nanstd(a):.4f}"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--n_per_round", type=int, default=4)
    p.add_argument("--max_rounds", type=int, default=3)
    p.add_argument("--finetune_epochs", type=int, default=2)
    p.add_argument("--fp_iterations", type=int, default=10)
    p.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "monai_fair_snnl_bench"))
    p.add_argument("--out", default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip_speed", action="store_true")
    p.add_argument("--skip_fairness", action="store_true", help="run only the scoring-speed part")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    sp = {} if args.skip_speed else speed()
    print(json.dumps(sp, indent=1), flush=True)
    if args.skip_fairness:
        if args.out:
            with open(args.out + ".json", "w") as f:
                json.dump({"speed": sp, "args": vars(args)}, f, indent=1)
        return sp
    datalist = ensure_synthetic_dataset(args.data, task="classification", seed=0)
    train, val, test = (load_split(datalist, s) for s in ("training", "validation", "test"))
    _, group_names = load_fair_datalist(datalist, split="training")
    num_groups = len(group_names)
    results = []
    for s in args.seeds:
        r = run_seed(s, train, val, test, args, num_groups)
        print(s, json.dumps(r), flush=True)
        results.append(r)

    keys = ["accuracy", "macro_f1", "eopp0", "eopp1", "eodds"] + [f"f1_group{k}" for k in range(num_groups)]
    lines = [
        "| model | "
        + " | ".join(k if not k.startswith("f1_group") else f"F1 ({group_names[int(k[8:])]})" for k in keys)
        + " |",
        "|---" * (len(keys) + 1) + "|",
    ]
    for m in ("baseline", "snnl", "finetune_only", "random_pruning", "fairprune"):
        lines.append(f"| {m} | " + " | ".join(fmt([r[m][k] for r in results]) for k in keys) + " |")
    table = "\n".join(lines)
    t = {k: fmt([r["time"][k] for r in results]) for k in ("baseline_s", "snnl_s", "fairprune_s")}
    ratio = {k: fmt([r["time"][k] / r["time"]["baseline_s"] for r in results]) for k in ("snnl_s", "fairprune_s")}
    extra = {
        "snnl_pruned_channels": [r["snnl"]["pruned"] for r in results],
        "random_pruned_channels": [r["random_pruning"]["pruned"] for r in results],
        "fairprune_pruned_fraction": [round(r["fairprune"]["pruned"], 4) for r in results],
    }
    print(table)
    print(t, ratio, extra)
    if args.out:
        with open(args.out + ".json", "w") as f:
            json.dump({"speed": sp, "results": results, "args": vars(args)}, f, indent=1)
    return sp, table, t, ratio, extra


if __name__ == "__main__":
    main()
