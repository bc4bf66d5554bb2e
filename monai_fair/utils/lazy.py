# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Lazy package exports (PEP 562): a package's public names are imported from their submodule on first use."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, where: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package``, whose public names live in submodules.

    Args:
        package: the package's ``__name__``.
        where: public name -> the module that defines it (a dotted name, or a submodule name of ``package``).

    Returns:
        ``(__getattr__, __dir__)``; a resolved name is cached in the package's namespace.
    """

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        target = where[name]
        value = getattr(importlib.import_module(target if "." in target else f"{package}.{target}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__
