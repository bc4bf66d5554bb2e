# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Fairness report (JSON, Markdown, PNG) used by the CLI and :class:`monai_fair.handlers.FairnessReportHandler`."""

from __future__ import annotations

from monai_fair.report.writer import (
    build_fairness_report,
    format_report_markdown,
    format_report_summary,
    write_fairness_report,
)

__all__ = ["build_fairness_report", "format_report_markdown", "format_report_summary", "write_fairness_report"]
