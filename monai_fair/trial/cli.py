# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""``python -m monai_fair trial``: which method makes my model fairer? Every arm against ERM, over seeds.

Example::

    python -m monai_fair trial --datalist data/datalist.json --task classification \\
        --methods erm_select_dto reweighting groupdro --out trial/ --override epochs=10
    python -m monai_fair trial --datalist data/datalist.json --task classification --out trial/ --add-seeds 3
    python -m monai_fair trial --list-arms [--arms-file my_arms.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from monai_fair.report.cli import STATISTICS_OPTIONS
from monai_fair.utils.cli import add_argument_group, option_values

__all__ = ["add_trial_parser"]

#: report options the trial does not take (its seeds are the runs' seeds; its bootstrap is paired)
_NOT_TRIAL_OPTIONS = ("seed", "stratified_bootstrap")


def _override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (VALUE as JSON, else a string), got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value


#: the trial's default seeds (5: a seed-level test with fewer has little power)
DEFAULT_SEEDS = (0, 1, 2, 3, 4)
PRESETS = ("small",)


def format_arms(extra: Any = None) -> str:
    """Every arm of each task with its one-line description (built-in and ``--arms-file`` arms)."""
    from monai_fair.trial.arms import ARMS, REFERENCE

    registry = {**ARMS, **(extra or {})}
    lines = []
    for task in ("classification", "segmentation"):
        lines.append(f"{task} arms (reference: {REFERENCE[task]}):")
        for name, arm in registry.items():
            if arm.task == task:
                src = " [arms file]" if extra and name in extra else ""
                lines.append(f"  {name:<28} {arm.description}{src}")
    return "\n".join(lines)


def _seeds(args: argparse.Namespace) -> tuple[list[int], list[str] | None]:
    """The seeds (and, with ``--add-seeds``, the finished trial's methods) of this invocation."""
    if not args.add_seeds:
        return list(args.seeds or DEFAULT_SEEDS), args.methods
    manifest = Path(args.out) / "trial.json"
    if args.seeds:
        raise ValueError("give either --seeds or --add-seeds, not both.")
    if not manifest.is_file():
        raise ValueError(f"--add-seeds extends a trial, but {manifest} does not exist; run the trial first.")
    old = json.loads(manifest.read_text())
    seeds = [int(x) for x in old["seeds"]]
    new = list(range(max(seeds) + 1, max(seeds) + 1 + args.add_seeds))
    return seeds + new, args.methods or [a["name"] for a in old["arms"]]


def _preset(name: str | None, task: str, bundles_dir: str | None) -> dict[str, Any]:
    if name is None:
        return {}
    from monai_fair.trial.arms import default_bundles_dir

    if task != "classification":
        raise ValueError(f"--preset {name} exists for classification only.")
    path = Path(bundles_dir or default_bundles_dir()) / "fairness_trial" / "configs" / "presets" / f"{name}.json"
    return json.loads(path.read_text())


def _hint(task: str, overrides: dict[str, Any]) -> None:
    """On a CPU-only machine, say that the default network is slow and name the small preset."""
    import torch

    if (
        task == "classification"
        and not torch.cuda.is_available()
        and not {"network_def", "spatial_size"} & set(overrides)
    ):
        print(
            "trial: no GPU; the default network (ResNet-10 at 128 px) took ~40 min per ERM run on 2 CPU cores. "
            "For a quick CPU trial use --preset small (SmallVGGNet at 64 px) or --override spatial_size=[64,64].",
            file=sys.stderr,
        )


def _run(args: argparse.Namespace) -> int:
    from monai_fair.trial.arms import load_arms

    extra = load_arms(args.arms_file) if args.arms_file else None
    if args.list_arms:
        print(format_arms(extra))
        return 0
    missing = [f"--{k.replace('_', '-')}" for k in ("datalist", "task", "out") if not getattr(args, k)]
    if missing:
        raise SystemExit(f"trial: the following arguments are required: {', '.join(missing)}")
    from monai_fair.trial.report import format_trial_summary
    from monai_fair.trial.runner import run_trial

    seeds, methods = _seeds(args)
    overrides = {**_preset(args.preset, args.task, args.bundles_dir), **dict(args.override or [])}
    if not args.no_progress:
        _hint(args.task, overrides)
    report_options = option_values(args, STATISTICS_OPTIONS, skip=_NOT_TRIAL_OPTIONS)
    ray_options = None
    if args.executor == "ray":
        resources = {"num_cpus": args.ray_cpus, "num_gpus": args.ray_gpus}
        ray_options = {"ray_address": args.ray_address, "resources": resources,
                       "step_executor": args.ray_step_executor}  # fmt: skip
    res = run_trial(
        args.datalist,
        args.task,
        methods,
        seeds,
        args.out,
        bundles_dir=args.bundles_dir,
        overrides=overrides,
        extra_arms=extra,
        timeout=args.timeout,
        progress=not args.no_progress,
        report_options=report_options,
        executor=args.executor,
        ray_options=ray_options,
    )
    print(format_trial_summary(res))
    return 1 if res["failed"] else 0


def add_trial_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``trial``: run every method's bundle against ERM over seeds and write the comparison report."""
    p = subparsers.add_parser(
        "trial",
        help="run methods against ERM over seeds through their bundles; paired comparison report",
        description="Fairness trial: run each method's own bundle configs (python -m monai.bundle run) over seeds on "
        "one datalist, then compare every method with ERM on the same test cases (seed-aware statistics: training "
        "randomness and test-set sampling; Holm-corrected), with verdicts, a Pareto plot, a ranked table, each "
        "method's cost and the seeds a verdict would need. Resumable: rerun the same command after an interruption.",
        epilog=format_arms() + "\n\n(--list-arms --arms-file FILE also lists your own arms.)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--datalist", help="datalist JSON with training/validation/test and a group per item")
    p.add_argument("--task", choices=["classification", "segmentation"])
    p.add_argument("--methods", nargs="+", help="arm names (default: every arm of the task); ERM is always included")
    p.add_argument("--seeds", nargs="+", type=int, default=None, help=f"training seeds (default {list(DEFAULT_SEEDS)})")
    p.add_argument(
        "--add-seeds",
        dest="add_seeds",
        type=int,
        default=0,
        metavar="N",
        help="extend the finished trial in --out by N new seeds (its arms unless --methods; nothing is redone). "
        "Seeds added after looking at a verdict void its nominal error rate: plan them in advance",
    )
    p.add_argument("--out", help="output folder (resumable)")
    p.add_argument("--list-arms", dest="list_arms", action="store_true", help="list every arm and exit")
    p.add_argument(
        "--override", action="append", type=_override, metavar="KEY=VALUE", help="config override for every run; "
        "epochs=N sets every training stage's epochs (FairDi's three stages, APPLE's two); unused ones are reported"
    )  # fmt: skip
    p.add_argument("--preset", choices=PRESETS, help="small: SmallVGGNet at 64 px (a quick CPU trial; classification)")
    p.add_argument("--arms-file", dest="arms_file", help="JSON list of extra arms (fields of monai_fair.trial.Arm)")
    p.add_argument("--bundles-dir", dest="bundles_dir", help="folder holding the bundles (default: the checkout's)")
    p.add_argument("--timeout", type=float, help="seconds allowed per bundle run (subprocess executor)")
    p.add_argument(
        "--executor",
        choices=["subprocess", "inprocess", "ray"],
        default="subprocess",
        help="subprocess: each run its own 'python -m monai.bundle run' (isolated; default); inprocess: "
        "monai.bundle.run in this interpreter (no start-up per run; small trials); ray: every (arm, seed) run a Ray "
        "task (pip install 'monai-fair[ray]')",
    )
    p.add_argument("--ray-address", dest="ray_address", help="Ray cluster address (default: start a local one)")
    p.add_argument("--ray-cpus", dest="ray_cpus", type=float, default=1, help="CPUs requested per run (Ray; 1)")
    p.add_argument("--ray-gpus", dest="ray_gpus", type=float, default=0, help="GPUs requested per run (Ray; 0)")
    p.add_argument(
        "--ray-step-executor", dest="ray_step_executor", choices=["subprocess", "inprocess"], default="subprocess",
        help="how a Ray worker runs each step of its run (default subprocess)",
    )  # fmt: skip
    add_argument_group(
        p,
        "statistics",
        STATISTICS_OPTIONS,
        skip=_NOT_TRIAL_OPTIONS,
        overrides={"tolerance": {"help": "verdict tolerance, and the method effect the seeds should detect (0.05)"}},
    )
    p.add_argument("--no-progress", dest="no_progress", action="store_true")
    p.set_defaults(func=_run)
    return p
