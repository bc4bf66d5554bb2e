# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Fairness report (JSON, Markdown, PNG), fairness card and compare report; used by the CLIs and
:class:`monai_fair.handlers.FairnessReportHandler`.

Layers: :mod:`~monai_fair.report.inputs` (typed inputs and options), :mod:`~monai_fair.report.building` (the report
dictionary), :mod:`~monai_fair.report.markdown` (``report.md``, summary), :mod:`~monai_fair.report.files`
(``report.json``/``.md`` and plots), :mod:`~monai_fair.report.card`, :mod:`~monai_fair.report.compare`.

The public names are imported on first use, so that ``python -m monai_fair report --help`` does not import torch
and MONAI.
"""

from __future__ import annotations

from monai_fair.utils.lazy import lazy_exports

_EXPORTS = {
    "build_fairness_card": "monai_fair.report.card",
    "record_in_metadata": "monai_fair.report.card",
    "write_fairness_card": "monai_fair.report.card",
    "ClassificationInputs": "monai_fair.report.inputs",
    "SegmentationInputs": "monai_fair.report.inputs",
    "ReportOptions": "monai_fair.report.inputs",
    "build_fairness_report": "monai_fair.report.building",
    "format_report_markdown": "monai_fair.report.markdown",
    "format_report_summary": "monai_fair.report.markdown",
    "write_fairness_report": "monai_fair.report.files",
    "compare_predictions": "monai_fair.report.compare",
    "write_compare_report": "monai_fair.report.compare",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
