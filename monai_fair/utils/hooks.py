# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""One forward-hook helper for every method that reads a named layer of a network without editing its code
(neural-collapse features, SNNL channel scores, APPLE's latent)."""

from __future__ import annotations

from typing import Any

import torch
from monai.utils import look_up_option
from torch import nn

__all__ = ["get_named_module", "LayerCatcher"]


def get_named_module(network: nn.Module, name: str, kind: type | tuple[type, ...] | None = None) -> nn.Module:
    """Return ``network``'s submodule called ``name`` (a key of ``network.named_modules()``).

    Raises:
        ValueError: when there is no such module (the message lists candidate names, of type ``kind`` if given),
            or when it is not an instance of ``kind``.
    """
    modules = dict(network.named_modules())
    if not name or name not in modules:
        cands = [n for n, m in modules.items() if n and (kind is None or isinstance(m, kind))]
        what = f" {kind.__name__ if isinstance(kind, type) else kind} layers" if kind is not None else " modules"
        more = " ..." if len(cands) > 40 else ""
        raise ValueError(f"{type(network).__name__} has no module named {name!r}; its{what} are {cands[:40]}{more}.")
    module = modules[name]
    if kind is not None and not isinstance(module, kind):
        raise ValueError(f"module {name!r} of {type(network).__name__} is a {type(module).__name__}, not a {kind}.")
    return module


class LayerCatcher:
    """Context manager that keeps what a named layer of a network received or produced in the last forward pass.

    Args:
        network: the model (not modified; the hook is removed on exit).
        layer_name: key of ``network.named_modules()``.
        capture: ``"output"`` (forward hook; the first element when the layer returns a tuple/list) or ``"input"``
            (forward pre-hook; the layer's first positional argument).
        detach: detach the kept tensor from the graph.
        flatten: reshape the kept tensor to ``(batch, -1)``.
        kind: optional required module type (e.g. ``nn.Linear``), checked with :func:`get_named_module`.

    Example::

        with LayerCatcher(net, "fc", capture="input", flatten=True) as catcher:
            logits = net(x)
            features = catcher.pop()
    """

    def __init__(
        self,
        network: nn.Module,
        layer_name: str,
        capture: str = "output",
        detach: bool = True,
        flatten: bool = False,
        kind: type | tuple[type, ...] | None = None,
    ) -> None:
        self.module = get_named_module(network, layer_name, kind)
        self.layer_name = layer_name
        self.capture = look_up_option(capture, ("output", "input"))
        self.detach = detach
        self.flatten = flatten
        self.value: torch.Tensor | None = None
        self._handle: Any = None

    def _keep(self, x: Any) -> None:
        x = x[0] if isinstance(x, (tuple, list)) else x
        if self.detach:
            x = x.detach()
        self.value = x.reshape(x.shape[0], -1) if self.flatten else x

    def _pre_hook(self, module: nn.Module, args: tuple) -> None:
        self._keep(args)

    def _hook(self, module: nn.Module, args: tuple, output: Any) -> None:
        self._keep(output)

    def pop(self) -> torch.Tensor:
        """The tensor kept by the last forward pass (forgotten afterwards)."""
        if self.value is None:
            raise RuntimeError(f"the forward pass did not reach module {self.layer_name!r}.")
        value, self.value = self.value, None
        return value

    def __enter__(self) -> LayerCatcher:
        if self.capture == "input":
            self._handle = self.module.register_forward_pre_hook(self._pre_hook)
        else:
            self._handle = self.module.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self.value = None
