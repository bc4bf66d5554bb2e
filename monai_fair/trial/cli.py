# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""``python -m monai_fair trial``: which method makes my model fairer? Every arm against ERM, over seeds.

Example::

    python -m monai_fair trial --datalist data/datalist.json --task classification \\
        --methods erm_select_dto reweighting groupdro --seeds 0 1 2 --out trial/ --override epochs=10
"""

from __future__ import annotations

import argparse
import json
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


def _run(args: argparse.Namespace) -> int:
    from monai_fair.trial.arms import load_arms
    from monai_fair.trial.report import format_trial_summary
    from monai_fair.trial.runner import run_trial

    extra = load_arms(args.arms_file) if args.arms_file else None
    report_options = option_values(args, STATISTICS_OPTIONS, skip=_NOT_TRIAL_OPTIONS)
    res = run_trial(
        args.datalist,
        args.task,
        args.methods,
        args.seeds,
        args.out,
        bundles_dir=args.bundles_dir,
        overrides=dict(args.override or []),
        extra_arms=extra,
        timeout=args.timeout,
        progress=not args.no_progress,
        report_options=report_options,
        executor=args.executor,
    )
    print(format_trial_summary(res))
    return 1 if res["failed"] else 0


def add_trial_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``trial``: run every method's bundle against ERM over seeds and write the comparison report."""
    p = subparsers.add_parser(
        "trial",
        help="run methods against ERM over seeds through their bundles; paired comparison report",
        description="Fairness trial: run each method's own bundle configs (python -m monai.bundle run) over seeds on "
        "one datalist, then compare every method with ERM on the same test cases (paired statistics, seeds combined, "
        "Holm-corrected), with verdicts, a Pareto plot, a ranked table and each method's cost. Resumable: rerun the "
        "same command after an interruption.",
    )
    p.add_argument("--datalist", required=True, help="datalist JSON with training/validation/test and a group per item")
    p.add_argument("--task", choices=["classification", "segmentation"], required=True)
    p.add_argument("--methods", nargs="+", help="arm names (default: every arm of the task); ERM is always included")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--out", required=True, help="output folder (resumable)")
    p.add_argument(
        "--override", action="append", type=_override, metavar="KEY=VALUE", help="config override for every run"
    )
    p.add_argument("--arms-file", dest="arms_file", help="JSON list of extra arms (fields of monai_fair.trial.Arm)")
    p.add_argument("--bundles-dir", dest="bundles_dir", help="folder holding the bundles (default: the checkout's)")
    p.add_argument("--timeout", type=float, help="seconds allowed per bundle run (subprocess executor)")
    p.add_argument(
        "--executor",
        choices=["subprocess", "inprocess"],
        default="subprocess",
        help="subprocess: each run its own 'python -m monai.bundle run' (isolated; default); inprocess: "
        "monai.bundle.run in this interpreter (no start-up per run; small trials)",
    )
    add_argument_group(p, "statistics", STATISTICS_OPTIONS, skip=_NOT_TRIAL_OPTIONS)
    p.add_argument("--no-progress", dest="no_progress", action="store_true")
    p.set_defaults(func=_run)
    return p
