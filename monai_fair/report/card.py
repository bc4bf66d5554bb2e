# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The fairness card: a one-page summary of a fairness report (``fairness_card.md`` and ``fairness_card.json``).

The card states the model, the data, the groups and their counts *after suppression*, the headline figures with
their intervals, interval methods and verdicts, the decision threshold and where it came from, the flags, and the
suppression policy. It holds only what the report shows (hidden groups are counted, never named), so it can be
shared with the report. :func:`record_in_metadata` copies the headline figures under a ``fairness`` key of a
bundle's ``configs/metadata.json`` (opt-in: it changes a file of the bundle).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monai_fair.metrics.figures import headline_figures
from monai_fair.report.glossary import describe
from monai_fair.utils.io import atomic_write_text

__all__ = [
    "build_fairness_card",
    "find_bundle_metadata",
    "format_card_markdown",
    "record_in_metadata",
    "write_fairness_card",
]

_CLS_OVERALL = ("auc", "accuracy", "ece")
_SEG_OVERALL = ("dice", "iou")


def find_bundle_metadata(output_dir: str | Path) -> Path | None:
    """``configs/metadata.json`` of the bundle an output folder belongs to (``<bundle>/eval`` or
    ``<bundle>/eval/<sub>``), or ``None``."""
    p = Path(output_dir).resolve()
    for parent in (p.parent, p.parent.parent):
        f = parent / "configs" / "metadata.json"
        if f.is_file():
            return f
    return None


def _model_from_metadata(meta_file: Path | None) -> dict[str, Any]:
    if meta_file is None:
        return {}
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return {k: meta[k] for k in ("name", "version", "task", "intended_use") if k in meta}


def build_fairness_card(
    report: Mapping[str, Any],
    model: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The card dictionary of a report (as written to ``fairness_card.json``).

    Args:
        report: a report dictionary (:func:`monai_fair.report.build_fairness_report`), already suppressed.
        model: what the model is (e.g. ``{"name", "version"}`` from a bundle's metadata).
        data: what the data is (e.g. ``{"source": "datalist.json"}``); the split and attribute come from the report.
    """
    task = report["task"]
    headline = headline_figures(task)
    overall_keys = _CLS_OVERALL if task == "classification" else _SEG_OVERALL
    ov = report["overall"]
    ci_o = ov.get("ci") or {}
    figures: dict[str, Any] = {}
    for k in overall_keys:
        if k in ov:
            figures[f"overall_{k}"] = {
                "name": f"overall {describe(k)[0]}",
                "value": ov.get(k),
                "ci": ci_o.get(k),
                "ci_method": report.get("ci_method") if ci_o.get(k) else None,
            }
    for k in headline:
        e = (report.get("figures") or {}).get(k)
        if e is None:
            continue
        figures[k] = {"name": describe(k)[0], **{f: e.get(f) for f in ("value", "ci", "ci_method")}}
        if "verdict" in e:
            figures[k]["verdict"] = e.get("verdict")
            if e.get("caveat"):
                figures[k]["caveat"] = e["caveat"]
            figures[k]["min_detectable_gap"] = e.get("min_detectable_gap")
    return {
        "model": dict(model or {}),
        "data": {
            **dict(data or {}),
            "split": report.get("split"),
            "attribute": report.get("attribute"),
            "n": ov["n"],
            "n_omitted": report.get("n_omitted", 0),
        },
        "task": task,
        "groups": {name: e["n"] for name, e in report["groups"].items()},
        "hidden_groups": report["suppressed_groups"],
        "threshold": report.get("threshold"),
        "headline": figures,
        "tolerance": report.get("tolerance"),
        "verdict_rule": report.get("verdict_rule"),
        "flags": list(report.get("flags", [])),
        "notes": list(report.get("notes", [])),
        "suppression": report.get("suppression"),
    }


def _fmt(v: Any) -> str:
    return "n/a" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def format_card_markdown(card: Mapping[str, Any]) -> str:
    """``fairness_card.md``."""
    m, d = card["model"], card["data"]
    name = m.get("name", "not given")
    lines = [f"# Fairness card: {name}", ""]
    if m.get("version"):
        lines.append(f"- Model version: {m['version']}")
    if m.get("intended_use"):
        lines.append(f"- Intended use: {m['intended_use']}")
    src = f" from {d['source']}" if d.get("source") else ""
    lines.append(f"- Data: split **{d.get('split') or 'n/a'}**{src}, {d['n']} cases")
    if d.get("n_omitted"):
        lines[-1] += f" ({d['n_omitted']} left out for a missing value)"
    lines.append(f"- Groups by **{d.get('attribute') or 'group'}** (after suppression): " + _groups(card))
    th = card.get("threshold")
    if th:
        lines.append(f"- Decision threshold: {_fmt(th.get('value'))} ({th['source']})")
    sup = card.get("suppression") or {}
    lines.append(
        f"- Suppression policy: groups with n < {sup.get('min_group_size')} hidden, with secondary suppression "
        f"(no hidden group derivable from overall minus the reported groups); hidden groups: {card['hidden_groups']}"
    )
    lines += ["", "| figure | value | CI | CI method | verdict |", "|---|---|---|---|---|"]
    for f in card["headline"].values():
        ci = f.get("ci")
        ci_s = f"[{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci and ci[0] is not None else ""
        lines.append(
            f"| {f['name']} | {_fmt(f['value'])} | {ci_s} | {f.get('ci_method') or ''} | "
            f"{(f.get('verdict') or '') + (' (flag!)' if f.get('caveat') else '')} |"
        )
    lines += ["", f"Verdicts at tolerance ±{_fmt(card.get('tolerance'))}: {card.get('verdict_rule')}."]
    if card["flags"] or card["notes"]:
        lines += [""] + [f"- **flag**: {x}" for x in card["flags"]] + [f"- {x}" for x in card["notes"]]
    return "\n".join(lines) + "\n"


def _groups(card: Mapping[str, Any]) -> str:
    g = card["groups"]
    return ", ".join(f"{k} (n={v})" for k, v in g.items()) if g else "none shown"


def record_in_metadata(card: Mapping[str, Any], metadata_file: str | Path) -> Path:
    """Write the card's headline figures under the ``fairness`` key of a bundle's ``metadata.json`` (atomic)."""
    f = Path(metadata_file)
    if not f.is_file():
        raise FileNotFoundError(f"bundle metadata not found: {f}")
    meta = json.loads(f.read_text())
    meta["fairness"] = {
        "split": card["data"].get("split"),
        "attribute": card["data"].get("attribute"),
        "groups": card["groups"],
        "hidden_groups": card["hidden_groups"],
        "threshold": card.get("threshold"),
        "tolerance": card.get("tolerance"),
        "headline": {
            k: {x: v.get(x) for x in ("value", "ci", "ci_method", "verdict") if x in v}
            for k, v in card["headline"].items()
        },
        "min_group_size": (card.get("suppression") or {}).get("min_group_size"),
    }
    atomic_write_text(f, json.dumps(meta, indent=4) + "\n")
    return f


def write_fairness_card(
    out_dir: str | Path,
    report: Mapping[str, Any],
    model: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
    metadata_file: str | Path | None = None,
    record_metadata: bool = False,
) -> dict[str, Any]:
    """Write ``fairness_card.md`` and ``fairness_card.json`` to ``out_dir``; return the card.

    Args:
        out_dir: folder (the report's).
        report: the report dictionary.
        model: model description; missing fields are read from ``metadata_file`` (``name``, ``version``, ...).
        data: data description (e.g. ``{"source": ...}``).
        metadata_file: the bundle's ``configs/metadata.json`` (model name/version; target of ``record_metadata``).
        record_metadata: also write the headline figures under ``fairness`` in ``metadata_file``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta_model = _model_from_metadata(Path(metadata_file) if metadata_file else None)
    card = build_fairness_card(report, {**meta_model, **{k: v for k, v in (model or {}).items() if v}}, data)
    (out / "fairness_card.json").write_text(json.dumps(card, indent=2))
    (out / "fairness_card.md").write_text(format_card_markdown(card))
    if record_metadata:
        if metadata_file is None:
            raise ValueError("record_metadata=True needs the bundle's metadata_file.")
        record_in_metadata(card, metadata_file)
    return card
