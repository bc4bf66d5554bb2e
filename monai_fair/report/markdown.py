# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The Markdown of a fairness report (``report.md``) and its printable summary, from the report dictionary."""

from __future__ import annotations

from typing import Any

from monai_fair.metrics.figures import headline_figures
from monai_fair.report.glossary import glossary_lines, readable_name

__all__ = ["format_report_markdown", "format_report_summary", "report_title"]


def report_title(report: dict[str, Any], what: str) -> str:
    """Plot title: what, the attribute, the split and the CI level."""
    parts = [what, f"by {report.get('attribute') or 'group'}"]
    if report.get("split"):
        parts.append(f"split: {report['split']}")
    if report.get("ci_method"):
        parts.append(f"{int(round(100 * report['ci_level']))}% CI")
    return " — ".join([parts[0], ", ".join(parts[1:])])


def _fmt(v: Any) -> str:
    return "n/a" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def _fmt_ci(entry: dict[str, Any], m: str) -> str:
    s = _fmt(entry.get(m))
    ci = (entry.get("ci") or {}).get(m)
    if ci is not None and entry.get(m) is not None and ci[0] is not None:
        s += f" [{_fmt(ci[0])}, {_fmt(ci[1])}]"
    return s


def _n(entry: dict[str, Any]) -> str:
    """A row's ``n``, or ``hidden`` when the whole input is below ``min_group_size``."""
    return "hidden (below min_group_size)" if entry.get("n") is None else str(entry["n"])


def format_report_markdown(report: dict[str, Any]) -> str:
    """``report.md``: context, flags and notes, per-group table, fairness figures with verdicts, glossary."""
    metrics = report["metrics"] if "metrics" in report else [m for m in report["overall"] if m not in ("n", "ci")]
    lines = [f"# Fairness report ({report['task']})", ""]
    lines.append(f"- Groups from: **{report.get('attribute') or 'group'}**; split: **{report.get('split') or 'n/a'}**.")
    th = report.get("threshold")
    if th:
        lines.append(f"- Decision threshold: {_fmt(th.get('value'))} (source: {th['source']}).")
    if report.get("ci_method"):
        lines.append(f"- Intervals: {int(round(100 * report['ci_level']))}% CIs, {report['ci_method']}.")
    else:
        lines.append("- Intervals: none (n_bootstrap = 0); no verdict can be given.")
    lines.append(
        f"- Suppression: groups with fewer than {report['min_group_size']} cases are hidden, with secondary "
        f"suppression; hidden groups: {report['suppressed_groups']}."
    )
    lines.append(f"- Verdict tolerance: ±{report['tolerance']:g} ({report['verdict_rule']}).")
    if report.get("flags") or report.get("notes"):
        lines += ["", "## Flags and notes", ""]
        lines += [f"- **flag**: {f}" for f in report.get("flags", [])]
        lines += [f"- {n}" for n in report.get("notes", [])]
    lines += ["", "## Per-group metrics", ""]
    lines += [
        "| " + " | ".join(["group", "n", *(readable_name(m) for m in metrics)]) + " |",
        "|" + "---|" * (len(metrics) + 2),
    ]
    for name, entry in [("overall", report["overall"]), *report["groups"].items()]:
        lines.append("| " + " | ".join([name, _n(entry), *(_fmt_ci(entry, m) for m in metrics)]) + " |")
    methods = report.get("ci_methods") or {}
    if methods:
        by: dict[str, list[str]] = {}
        for m in metrics:
            if methods.get(m):
                by.setdefault(methods[m], []).append(readable_name(m))
        lines += [""] + [f"CI method of {', '.join(ms)}: {meth}." for meth, ms in by.items()]
    lines += ["", "## Fairness figures", ""]
    lines += [
        "| figure | value | CI | CI method | verdict | smallest detectable gap |",
        "|---|---|---|---|---|---|",
    ]
    shown_keys = []
    for m, e in report.get("figures", {}).items():
        if e["value"] is None and m not in _headline(report):
            continue
        shown_keys.append(m)
        c = e.get("ci")
        lines.append(
            f"| {readable_name(m)} (`{m}`) | {_fmt(e['value'])} | "
            + (f"[{_fmt(c[0])}, {_fmt(c[1])}]" if c else "")
            + f" | {e.get('ci_method') or ''} | {(e.get('verdict') or '') + (' (flag!)' if e.get('caveat') else '')} | "
            + (f"{_fmt(e.get('min_detectable_gap'))} |" if "verdict" in e else " |")
        )
    lines += ["", "## Glossary", ""]
    lines += glossary_lines(["n", *metrics, *shown_keys])
    return "\n".join(lines) + "\n"


def _headline(report: dict[str, Any]) -> tuple[str, ...]:
    return headline_figures(report["task"])


def format_report_summary(report: dict[str, Any]) -> str:
    """A few printable lines: overall performance and the headline fairness figures with CIs and verdicts."""
    task = report["task"]
    ov = report["overall"]
    keys = ("accuracy", "auc") if task == "classification" else ("dice", "iou")
    first = f"fairness report ({task}): n={_n(ov)}, " + ", ".join(f"{k}={_fmt(ov.get(k))}" for k in keys)
    first += f", {len(report['groups'])} groups reported, {report['suppressed_groups']} suppressed"
    parts = []
    for m in _headline(report):
        e = report.get("figures", {}).get(m)
        if e is None:
            continue
        s = f"{m}={_fmt(e['value'])}"
        if e.get("ci"):
            s += f" [{_fmt(e['ci'][0])}, {_fmt(e['ci'][1])}]"
        if e.get("verdict"):
            s += f" ({e['verdict']}" + (", flag!" if e.get("caveat") else "")
            s += f"; detectable >= {_fmt(e['min_detectable_gap'])})" if e.get("min_detectable_gap") else ")"
        parts.append(s)
    tol = (
        f"; verdicts at tolerance {report['tolerance']:g}"
        if any(e.get("verdict") for e in report["figures"].values())
        else ""
    )
    lines = [first + tol, "  " + ", ".join(parts)]
    if len(report["groups"]) < 2:
        lines.append("  " + report["notes"][-1])
    lines += [f"  flag: {f}" for f in report.get("flags", [])]
    return "\n".join(lines)
