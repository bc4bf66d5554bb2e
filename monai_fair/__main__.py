# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Command line: ``python -m monai_fair {synth,adapt,report}``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from monai_fair.data.cli import add_adapt_parser, add_synth_parser
from monai_fair.report.cli import add_report_parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monai_fair", description="monai-fair command line")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_synth_parser(subparsers)
    add_adapt_parser(subparsers)
    add_report_parser(subparsers)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
