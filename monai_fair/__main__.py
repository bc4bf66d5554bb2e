# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Command line: ``python -m monai_fair <command> ...``.

Start-up is lazy: this module imports nothing heavy; a command's module (and MONAI, torch) is imported only when
that command runs, so ``python -m monai_fair --help`` answers at once. A command is registered in ``COMMANDS`` as
``name -> (module, function adding its parser to argparse subparsers, one-line help)``; the parser function sets
``func`` (called with the parsed namespace, returns an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["COMMANDS", "main"]

COMMANDS: dict[str, tuple[str, str, str]] = {
    "datalist": ("monai_fair.data.cli", "add_datalist_parser", "datalist.json from a table or DICOM headers"),
    "check": ("monai_fair.data.cli", "add_check_parser", "check a datalist's images, labels, groups, splits"),
    "synth": ("monai_fair.data.cli", "add_synth_parser", "write a synthetic, realistically biased dataset"),
    "adapt": ("monai_fair.data.cli", "add_adapt_parser", "datalist from a public dataset's metadata"),
    "report": ("monai_fair.report.cli", "add_report_parser", "fairness report from a predictions CSV"),
    "compare": ("monai_fair.report.cli", "add_compare_parser", "paired comparison of models on the same cases"),
    "trial": ("monai_fair.trial.cli", "add_trial_parser", "run methods against ERM over seeds; comparison report"),
    "bundle": ("monai_fair.bundles", "add_bundle_parser", "list the bundles, or write one (zoo layout) to a folder"),
}


def _top_parser() -> argparse.ArgumentParser:
    lines = "\n".join(f"  {name:<10} {info[2]}" for name, info in COMMANDS.items())
    return argparse.ArgumentParser(
        prog="python -m monai_fair",
        description="monai-fair command line",
        usage="python -m monai_fair <command> [options]   (python -m monai_fair <command> --help for its options)",
        epilog=f"commands:\n{lines}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return 0 if argv else 2
    name = argv[0]
    if name not in COMMANDS:
        top.error(f"unknown command {name!r}; choose from {', '.join(COMMANDS)}")
    module_name, adder, _ = COMMANDS[name]
    parser = argparse.ArgumentParser(prog="python -m monai_fair")
    subparsers = parser.add_subparsers(dest="command", required=True)
    getattr(importlib.import_module(module_name), adder)(subparsers)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
