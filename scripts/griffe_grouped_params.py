# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Griffe extension used by ``make docs``: grouped Google-style argument entries become one entry per name.

monai-fair docstrings document related arguments together, e.g. ``image_key, label_key: keys of the batch.`` or
``metadata / ground_truth: CSV files ...``. Griffe's Google parser reads such a line as one parameter called
``"image_key, label_key"`` and warns that it is not in the signature (``mkdocs build --strict`` then fails). This
extension rewrites every grouped entry of an ``Args:``-like section into one entry per name, each with the full
description, before the docstring is parsed, so the strict build still catches a documented name that really is
missing from the signature.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

__all__ = ["GroupedParamsExtension", "split_grouped_params"]

_SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Other Parameters|Other Args):\s*$"
)
_NAME = r"\**[A-Za-z_]\w*"
_GROUPED = re.compile(rf"^(?P<names>{_NAME}(?:\s*[,/]\s*{_NAME})+)(?P<type>\s*\([^)]*\))?:(?P<rest>.*)$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def split_grouped_params(text: str) -> str:
    """Return ``text`` (a cleaned docstring) with each grouped argument entry split into one entry per name.

    Example: in an ``Args:`` section, ``"    a, b (int): the sizes."`` becomes ``"    a (int): the sizes."`` and
    ``"    b (int): the sizes."`` (continuation lines are repeated under each name). Lines outside such sections and
    entries naming one argument are returned unchanged.
    """
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        i += 1
        if not _SECTION.match(line.strip()):
            continue
        header_indent, entry_indent = _indent(line), None
        while i < len(lines):
            line = lines[i]
            if line.strip() and _indent(line) <= header_indent:
                break  # the section ended
            if not line.strip() or (entry_indent is not None and _indent(line) > entry_indent):
                out.append(line)
                i += 1
                continue
            entry_indent = _indent(line) if entry_indent is None else entry_indent
            block = [line]  # one entry: its first line and its continuation lines
            i += 1
            while i < len(lines) and lines[i].strip() and _indent(lines[i]) > entry_indent:
                block.append(lines[i])
                i += 1
            match = _GROUPED.match(block[0].strip())
            if match is None:
                out += block
                continue
            pad = block[0][: _indent(block[0])]
            for name in re.split(r"\s*[,/]\s*", match["names"]):
                out.append(f"{pad}{name}{match['type'] or ''}:{match['rest']}")
                out += block[1:]
    return "\n".join(out)


class GroupedParamsExtension(Extension):
    """Apply :func:`split_grouped_params` to the docstring of every function and class (before parsing)."""

    def on_instance(self, *, obj: Object, **kwargs: Any) -> None:
        if obj.docstring is not None and (obj.is_function or obj.is_class):
            obj.docstring.value = split_grouped_params(obj.docstring.value)
