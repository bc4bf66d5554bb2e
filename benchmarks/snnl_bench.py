# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""SNNL channel pruning (SCP) with its controls and FairPrune on monai-fair's synthetic biased data; scoring speed.

Fairness part (default), per seed, in one process: train a SmallVGGNet baseline (plain MONAI-style training with
``GroupSupervisedTrainer``), then from the same baseline weights run the pruning stage four ways, each with the
library code the bundle uses (``ChannelPruningDriver`` + ``SNNLPruningHandler``, ``FairPruneEngine``):

* ``snnl``: SCP, the ``n_per_round`` channels of the last conv with the lowest SNNL on the group, fine-tuned;
* ``finetune_only``: the identical rounds, fine-tuning and FATE selection, no channel pruned (control);
* ``random_pruning``: the identical schedule, channels drawn at random (control);
* ``fairprune``: FairPrune (weight-level, per-group Fisher saliency, no fine-tuning).

Rounds/iterations are kept by validation FATE (SCP) / validation EOdds (FairPrune) under the macro-F1 floor
``--max_f1_drop`` (the unpruned model is the fallback). The same run also reports, as ``<arm>_nofloor``, the model
the rule *without* the floor would have kept (the round with the best validation FATE / lowest validation EOdds;
every round's network is snapshotted), so the floor's effect is a paired comparison on the same seeds. Test-split
accuracy, macro-F1, EOpp0, EOpp1, EOdds (the SCP mean form ``eodds_mean``, which FATE uses; ``eodds_max`` is
fairlearn's max form) and per-group macro-F1; wall time as a ratio to baseline training. Paired differences (same
seed) between arms come from the harness.

Speed part (``--part speed``): SNNL scores of a 512-channel layer (b=128 samples, 14x14 maps, as SCP's VGG-11 at
224 px), vectorised (``snnl_channel_scores``) vs a per-channel loop of the same kernel, interleaved repeats.

``--schedule scp`` runs the pruning arms with the bundle's SCP-shaped fine-tuning (``finetune_schedule: "scp"``:
Adam at 1e-4 with a step decay restarting each round, 6 epochs, 1.5 % of the layer per round, patience 3,
class-balanced sampler); ``--scenario shortcut --data-param 'shortcut_splits="training"'`` gives the data where
SCP's mechanism applies with an unbiased validation split. Every arm also records its per-round test figures.

Usage::

    python benchmarks/snnl_bench.py --seeds 0 1 2 3 4 --out docs/benchmarks/snnl_results
    python benchmarks/snnl_bench.py --schedule scp --scenario shortcut --data-param 'shortcut_splits="training"' \
        --seeds 0 1 2 3 4 --out docs/benchmarks
    python benchmarks/snnl_bench.py --part speed --seeds 0 --out docs/benchmarks/snnl_results
"""

from __future__ import annotations

import copy
import json
import os
import tempfile

import torch
from harness import Stopwatch, benchmark_parser, interleaved_timing, run_benchmark
from ignite.engine import Events
from monai.data import DataLoader
from monai.handlers import LrScheduleHandler
from monai.transforms import Activationsd, AsDiscreted, Compose
from sklearn.metrics import f1_score
from torch.nn.utils import prune

from monai_fair.data import classification_transforms, ensure_synthetic_dataset, load_fair_datalist
from monai_fair.engines import GroupSupervisedEvaluator, GroupSupervisedTrainer
from monai_fair.methods.snnl import (
    ChannelPruningDriver,
    FairPruneEngine,
    RoundStepDecay,
    SNNLPruningHandler,
    compute_scp_accuracy_fairness,
    finetune_optimizer,
    finetune_sampler,
    snnl_channel_scores,
    snnl_per_anchor,
    stratified_batch_indices,
)
from monai_fair.metrics import compute_group_classification_metrics
from monai_fair.networks import SmallVGGNet

CHANNELS = (16, 32, 64, 64)
LAYER = "features.12"
ARMS = {"snnl": "snnl", "finetune_only": "none", "random_pruning": "random"}


def speed_seed(seed: int, args) -> dict:
    """Vectorised vs per-channel-loop SNNL channel scores (same kernel), interleaved; max abs difference."""
    g = torch.Generator().manual_seed(seed)
    b, c = (32, 64) if args.quick else (128, 512)
    acts = torch.randn(b, c, 14, 14, generator=g)
    groups = (torch.rand(b, generator=g) < 0.3).long()
    feats = acts.reshape(b, c, -1)

    def loop():
        out = torch.zeros(c, dtype=torch.float64)
        for k in range(c):  # the reference: one SNNL call per channel
            terms, valid = snnl_per_anchor(feats[:, k], groups)
            out[k] = terms[valid].double().sum()
        return out

    def vec():
        return snnl_channel_scores(acts, groups, chunk_size=128)[0]

    timing = interleaved_timing({"loop": loop, "vectorised": vec}, reference="vectorised", repeats=3)
    n_valid = int(snnl_channel_scores(acts, groups)[1])
    diff = float(((loop() - vec()) / n_valid).abs().max())
    return {
        "loop_s": timing["loop"]["median_s"],
        "vectorised_s": timing["vectorised"]["median_s"],
        "speedup": timing["loop"]["median_ratio"],
        "max_abs_diff_mean_score": diff,
    }


def load_split(datalist: str, split: str, size: int) -> list[dict]:
    """A split as in-memory items (eval transforms of the bundle: load, channels, scale, resize)."""
    items, _ = load_fair_datalist(datalist, split=split)
    xform = classification_transforms("eval", spatial_size=size, in_channels=3)
    out = []
    for it in items:
        d = xform(it)
        out.append(
            {
                "image": d["image"].as_subclass(torch.Tensor).float(),
                "label": torch.tensor(int(it["label"])),
                "group": torch.tensor(int(it["group"])),
            }
        )
    return out


@torch.no_grad()
def predict(net, data):
    net.eval()
    x = torch.stack([d["image"] for d in data])
    probs = torch.cat([net(x[i : i + 128]).softmax(1) for i in range(0, len(x), 128)])
    return probs, torch.stack([d["label"] for d in data]), torch.stack([d["group"] for d in data])


def test_metrics(net, data, num_groups):
    probs, y, g = predict(net, data)
    pred = probs.argmax(1)
    m = compute_group_classification_metrics(probs[:, 1], y, g, num_groups=num_groups)
    scp = compute_scp_accuracy_fairness(probs, y, g, num_groups)
    out = {
        "accuracy": float((pred == y).float().mean()),
        "macro_f1": scp["macro_f1"],
        "eopp0": float(m["fairness"]["eopp0"]),
        "eopp1": float(m["fairness"]["eopp1"]),
        "eodds_mean": scp["eodds_mean"],
        "eodds_max": float(m["fairness"]["eodds"]),
    }
    for k in range(num_groups):  # per-group macro-F1 (SCP reports per-group F1)
        sel = g == k
        out[f"f1_group{k}"] = float(f1_score(y[sel], pred[sel], average="macro"))
    return out


def snapshot(net) -> dict:
    """A copy of a (possibly pruned: ``*_orig`` + ``*_mask``) network's state."""
    return copy.deepcopy(net.state_dict())


def restore(state: dict):
    """A fresh SmallVGGNet with the masks of ``state`` registered, loaded from ``state``."""
    net = SmallVGGNet(channels=CHANNELS)
    for name, module in net.named_modules():
        for param in ("weight", "bias"):
            if f"{name}.{param}_mask" in state:
                prune.identity(module, param)
    net.load_state_dict(state)
    return net


def post():
    return Compose([Activationsd(keys="pred", softmax=True), AsDiscreted(keys="label", to_onehot=2)])


def evaluator(net, val):
    return GroupSupervisedEvaluator(
        device="cpu", val_data_loader=DataLoader(val, batch_size=128), network=net, postprocessing=post()
    )


def run_seed(seed: int, args) -> dict:
    if args.part == "speed":
        return speed_seed(seed, args)
    train, val, test, num_groups = DATA["train"], DATA["val"], DATA["test"], DATA["num_groups"]
    sw = Stopwatch()
    net = SmallVGGNet(channels=CHANNELS)
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
    with sw("baseline"):
        trainer.run()
    base_state = copy.deepcopy(net.state_dict())
    res: dict = {"baseline": test_metrics(net, test, num_groups)}
    groups = [int(d["group"]) for d in train]

    for arm, selection in ARMS.items():
        m = SmallVGGNet(channels=CHANNELS)
        m.load_state_dict(base_state)
        sch = SCHEDULES[args.schedule]
        ft_epochs = args.finetune_epochs or sch["epochs"]
        max_rounds = args.max_rounds or sch["max_rounds"]
        sampler = finetune_sampler(train, sch["sampler"], seed=seed + 1)
        gen = None if sampler is not None else torch.Generator().manual_seed(seed + 1)
        optimizer = finetune_optimizer(m.parameters(), sch["optimizer"], sch["lr"], 0.9, sch["weight_decay"])
        ft = GroupSupervisedTrainer(
            device="cpu",
            max_epochs=max_rounds * ft_epochs,
            train_data_loader=DataLoader(train, batch_size=32, shuffle=sampler is None, sampler=sampler, generator=gen),
            network=m,
            optimizer=optimizer,
            loss_function=torch.nn.CrossEntropyLoss(),
            postprocessing=post(),
        )
        decay = RoundStepDecay(ft_epochs, sch["lr_step"], sch["lr_gamma"])
        LrScheduleHandler(torch.optim.lr_scheduler.LambdaLR(optimizer, decay), print_lr=False).attach(ft)
        driver = ChannelPruningDriver(
            m,
            LAYER,
            DataLoader(train, batch_sampler=stratified_batch_indices(groups, 64, seed=seed)),
            selection=selection,
            n_per_round=args.n_per_round or sch["n_per_round"],
            fraction_per_round=sch["fraction_per_round"],
            max_rounds=max_rounds,
            max_f1_drop=None if args.max_f1_drop < 0 else args.max_f1_drop,
            keep_unpruned_if_best=False,
            seed=seed,
        )
        handler = SNNLPruningHandler(
            driver,
            evaluator(m, val),
            finetune_epochs=ft_epochs,
            patience=sch["patience"] or max_rounds,
            num_groups=num_groups,
            test_evaluator=evaluator(m, test),
        )
        snapshots = {}  # every round's fine-tuned network, taken before the handler prunes the next round
        ft.add_event_handler(
            Events.EPOCH_COMPLETED(every=ft_epochs),
            lambda e, s=snapshots, m=m, n=ft_epochs: s.__setitem__(e.state.epoch // n, snapshot(m)),
        )
        handler.attach(ft)
        torch.manual_seed(seed + 1)
        with sw(arm):
            ft.run()
        res[arm] = test_metrics(m, test, num_groups)
        res[arm]["pruned"] = len(handler.summary["pruned_channels"])
        res[arm]["kept_round"] = handler.summary["best_round"]
        res[arm]["rounds_run"] = len(handler.summary["rounds"]) - 1
        res[arm]["time_ratio"] = sw.ratio(arm, "baseline")
        rounds = handler.summary["rounds"][1:]
        no_floor = max(rounds, key=lambda r: r["fate"])["round"]  # what FATE alone keeps (no unpruned win)
        res[f"{arm}_nofloor"] = test_metrics(restore(snapshots[no_floor]), test, num_groups)
        res[f"{arm}_nofloor"]["kept_round"] = no_floor
        drop = handler.summary["rounds"][0]["macro_f1"] - rounds[no_floor - 1]["macro_f1"]
        res[f"{arm}_nofloor"]["val_macro_f1_drop"] = drop

    m = SmallVGGNet(channels=CHANNELS)
    m.load_state_dict(base_state)
    fp_batches = [
        {k: torch.stack([train[i][k] for i in b]) for k in ("image", "label", "group")}
        for b in stratified_batch_indices(groups, 64, num_batches=4, seed=seed)
    ]
    engine = FairPruneEngine(
        m,
        fp_batches,
        evaluator(m, val),
        num_groups,
        max_epochs=args.fp_iterations,
        beta=0.2,
        prune_ratio=0.05,
        patience=5,
        max_f1_drop=None if args.max_f1_drop < 0 else args.max_f1_drop,
    )
    fp_snapshots = {0: snapshot(m)}
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: fp_snapshots.__setitem__(e.state.epoch, snapshot(m)))
    with sw("fairprune"):
        engine.run()
    res["fairprune"] = test_metrics(m, test, num_groups)
    best = engine.summary["iterations"][engine.summary["best_iteration"]]
    res["fairprune"]["pruned_fraction"] = best["pruned_fraction"]
    res["fairprune"]["time_ratio"] = sw.ratio("fairprune", "baseline")
    no_floor = min(engine.summary["iterations"], key=lambda r: r["eodds_mean"])["iteration"]
    res["fairprune_nofloor"] = test_metrics(restore(fp_snapshots[no_floor]), test, num_groups)
    res["fairprune_nofloor"]["pruned_fraction"] = engine.summary["iterations"][no_floor]["pruned_fraction"]
    return res


DATA: dict = {}
#: fine-tuning schedules of the pruning arms: the bundle's two ``finetune_schedule`` values (prune.json), at this
#: script's baseline (Adam 1e-3); ``short``'s patience is ``max_rounds`` as in the earlier runs of this benchmark
SCHEDULES = {
    "short": {"optimizer": "sgd", "lr": 0.01, "weight_decay": 1e-5, "epochs": 1, "lr_step": None, "lr_gamma": 1.0,
              "sampler": "shuffle", "n_per_round": 4, "fraction_per_round": None, "max_rounds": 2, "patience": None},
    "scp": {"optimizer": "adam", "lr": 1e-4, "weight_decay": 0.0, "epochs": 6, "lr_step": 3, "lr_gamma": 0.1,
            "sampler": "class_balanced", "n_per_round": None, "fraction_per_round": 0.015, "max_rounds": 8,
            "patience": 3},
}  # fmt: skip

if __name__ == "__main__":
    ap = benchmark_parser(__doc__, default_seeds=(0, 1, 2, 3, 4))
    ap.add_argument("--part", choices=("fairness", "speed"), default="fairness")
    ap.add_argument("--epochs", type=int, default=4, help="baseline training epochs")
    ap.add_argument(
        "--schedule", choices=tuple(SCHEDULES), default="short", help="fine-tuning schedule (see SCHEDULES)"
    )
    ap.add_argument("--n_per_round", type=int, default=None, help="default: the schedule's")
    ap.add_argument("--max_rounds", type=int, default=None, help="default: the schedule's")
    ap.add_argument("--finetune_epochs", type=int, default=None, help="default: the schedule's")
    ap.add_argument("--scenario", default="irreducible", help="synthetic bias scenario")
    ap.add_argument("--n-samples", type=int, default=800, help="synthetic cases")
    ap.add_argument("--channels", type=int, nargs="+", default=list(CHANNELS), help="SmallVGGNet widths (last: pruned)")
    ap.add_argument("--image-size", type=int, default=64, help="synthetic image size (px)")
    ap.add_argument("--data-param", action="append", default=[], metavar="KEY=JSON", help="e.g. shortcut_splits=...")
    ap.add_argument("--fp_iterations", type=int, default=4)
    ap.add_argument("--max_f1_drop", type=float, default=0.05, help="macro-F1 floor; negative: no floor")
    ap.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "monai_fair_snnl_bench"))
    args = ap.parse_args()
    CHANNELS = tuple(args.channels)  # the pruned layer is the last conv, features.12 for four blocks
    if args.part == "fairness":
        n, size = (120, 32) if args.quick else (args.n_samples, args.image_size)
        if args.quick:
            args.epochs, args.fp_iterations = 1, 1
        extra = {k: json.loads(v) for k, _, v in (p.partition("=") for p in args.data_param)}
        datalist = ensure_synthetic_dataset(
            args.data, task="classification", seed=0, n_samples=n, image_size=size, scenario=args.scenario, **extra
        )
        DATA.update(
            train=load_split(datalist, "training", size),
            val=load_split(datalist, "validation", size),
            test=load_split(datalist, "test", size),
            num_groups=len(load_fair_datalist(datalist, split="training")[1]),
        )
        pairs = [("snnl", "baseline"), ("snnl", "finetune_only"), ("snnl", "random_pruning"), ("fairprune", "baseline")]
        pairs += [(a, f"{a}_nofloor") for a in (*ARMS, "fairprune")]
        notes = (
            "EOdds = eodds_mean (SCP mean form, used by FATE); eodds_max = fairlearn's max form. Rounds kept by "
            f"validation FATE with macro-F1 floor {args.max_f1_drop} (keep_unpruned_if_best=False: the unpruned "
            "model is kept only when no round meets the floor); <arm>_nofloor = the round FATE alone keeps (same "
            "run). Loaded 2-core CPU: time ratios are noisy."
        )
        name = "snnl" if (args.schedule, args.scenario) == ("short", "irreducible") else f"snnl_{args.scenario}"
        name += "" if args.schedule == "short" else f"_{args.schedule}"
        name += "" if CHANNELS == (16, 32, 64, 64) else f"_c{CHANNELS[-1]}"
        notes += f" SmallVGGNet channels {CHANNELS}, pruned layer {LAYER}."
        notes += f" Schedule '{args.schedule}': {SCHEDULES[args.schedule]}; scenario {args.scenario} {extra}."
        run_benchmark(name, run_seed, args, pairs=pairs, notes=notes)
    else:
        run_benchmark("snnl_speed", run_seed, args, notes="Loaded 2-core CPU; interleaved repeats, medians.")
