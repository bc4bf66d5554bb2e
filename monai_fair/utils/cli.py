# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Declared command-line option groups, shared by the ``report``, ``compare`` and ``trial`` commands.

A group of options is declared once as a tuple of :class:`CliOption` (flags and ``argparse`` keywords);
:func:`add_argument_group` adds it to a parser (optionally leaving some out) and :func:`option_values` reads the
parsed values back as keyword arguments, so a command neither repeats the ``add_argument`` calls of another
command nor copies the parsed values into a dictionary by hand. Imports only the standard library (``--help``
stays fast).
"""

from __future__ import annotations

import argparse
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CliOption", "add_argument_group", "option_values"]


@dataclass(frozen=True)
class CliOption:
    """One command-line option: its flags (``"--n-bootstrap"``), the ``argparse.add_argument`` keywords and the
    name of the function keyword it feeds (``kwarg``; default: the option's ``dest``)."""

    flags: tuple[str, ...]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    kwarg: str | None = None

    @property
    def dest(self) -> str:
        """The attribute of the parsed namespace (``argparse``'s rule: the first long flag, ``-`` -> ``_``)."""
        if "dest" in self.kwargs:
            return str(self.kwargs["dest"])
        long = [f for f in self.flags if f.startswith("--")]
        return (long[0] if long else self.flags[0]).lstrip("-").replace("-", "_")


def add_argument_group(
    parser: argparse.ArgumentParser,
    title: str,
    options: Sequence[CliOption],
    skip: Collection[str] = (),
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> argparse._ArgumentGroup:
    """Add ``options`` (all but the dests in ``skip``) as an argument group titled ``title`` to ``parser``.

    Args:
        parser: the command's parser.
        title: heading of the group in ``--help``.
        options: the declared options.
        skip: dests of options this command does not take.
        overrides: dest -> ``add_argument`` keywords that replace the declared ones for this command (e.g. another
            ``help`` text).

    Returns:
        the ``argparse`` argument group (more options may be added to it).
    """
    group = parser.add_argument_group(title)
    for opt in options:
        if opt.dest in skip:
            continue
        kwargs = {**opt.kwargs, **((overrides or {}).get(opt.dest) or {})}
        group.add_argument(*opt.flags, **kwargs)
    return group


def option_values(args: argparse.Namespace, options: Sequence[CliOption], skip: Collection[str] = ()) -> dict[str, Any]:
    """The parsed values of ``options`` (all but the dests in ``skip``) as ``{kwarg: value}``."""
    return {opt.kwarg or opt.dest: getattr(args, opt.dest) for opt in options if opt.dest not in skip}
