# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Every trial verdict that changed between a stored result file and new trial reports.

The 3-seed trial of ``docs/benchmarks/trial_results.json`` used the conditional statistics (test cases of these
trained models); a re-run with more seeds uses the seed-aware ones. This lists, per (scenario, arm, figure) present
in both, the old and the new difference and verdict, and whether the verdict changed (Markdown on stdout):

    python benchmarks/verdict_changes.py --old docs/benchmarks/trial_results.json \
        --new classification/shortcut=bench_out/trial5/classification/shortcut/report/trial_report.json ...

``--all`` lists the unchanged verdicts too.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

MARK = {"improves": "▲", "harms": "▼"}


def _key(row: dict) -> tuple[str, str]:
    return row["arm"], row["figure"]


def _cell(row: dict) -> str:
    lo, hi = row.get("ci") or (None, None)
    ci = f" [{lo:+.3f}, {hi:+.3f}]" if lo is not None and hi is not None else ""
    return f"{row['difference']:+.3f}{ci} {MARK.get(row.get('verdict'), '–')}"


def changes(old: dict, new: dict[str, dict], show_all: bool = False) -> list[str]:
    """Markdown rows ``| scenario | arm | figure | old | new | changed |``."""
    rows = []
    for scenario, rep in new.items():
        before = {_key(r): r for r in old.get(scenario, {}).get("headline", [])}
        for r in rep["headline"]:
            o = before.get(_key(r))
            if o is None or r.get("difference") is None or o.get("difference") is None:
                continue
            changed = o.get("verdict") != r.get("verdict")
            if changed or show_all:
                flag = "yes" if changed else ""
                rows.append(f"| {scenario} | {r['arm']} | {r['figure']} | {_cell(o)} | {_cell(r)} | {flag} |")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", required=True, help="a trial_results.json (trial_bench.py --collect)")
    ap.add_argument("--new", nargs="+", required=True, help="SCENARIO=path/to/trial_report.json")
    ap.add_argument("--all", action="store_true", help="list unchanged verdicts too")
    args = ap.parse_args()
    old = json.loads(Path(args.old).read_text())
    new = {}
    for spec in args.new:
        scenario, _, path = spec.partition("=")
        new[scenario] = json.loads(Path(path).read_text())
    head = ["| scenario | arm | figure | old (3 seeds, conditional) | new (seed-aware) | verdict changed |"]
    print("\n".join([*head, "|---|---|---|---|---|---|", *changes(old, new, args.all)]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
