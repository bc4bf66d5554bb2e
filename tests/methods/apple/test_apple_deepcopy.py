# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""``copy.deepcopy`` / pickling of :class:`PerturbedSegmentor`: the copy's hooks use the copy's own perturbers."""

from __future__ import annotations

import copy
import io

import torch
from monai.networks.nets import UNet

from monai_fair.methods.apple import LatentPerturber, PerturbedSegmentor, default_latent_module


def _wrapped() -> PerturbedSegmentor:
    torch.manual_seed(0)
    net = UNet(2, 1, 2, channels=(8, 16, 32), strides=(2, 2), norm="batch")
    name = default_latent_module(net)
    dim = dict(net.named_modules())[name](torch.zeros(1, 16, 8, 8)).shape[1]
    wrapped = PerturbedSegmentor(net, LatentPerturber(dim), latent_module=name)
    with torch.no_grad():  # make the (zero-initialised) perturber act, so that perturbing changes outputs
        for p in wrapped.perturbers.parameters():
            p.normal_(0.0, 0.1)
    return wrapped.eval()


def test_deepcopy_same_outputs_and_independent():
    orig = _wrapped()
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        y0 = orig(x)
    dup = copy.deepcopy(orig)
    with torch.no_grad():
        y1 = dup(x)
    torch.testing.assert_close(y1, y0)
    # the copy's hook filled the copy's latents, not the original's
    assert dup.latents_out[0] is not None
    assert dup.latents_out[0] is not orig.latents_out[0]
    hook = next(iter(dict(dup.network.named_modules())[dup.latent_modules[0]]._forward_hooks.values()))
    assert hook.owner is dup

    # perturbing the copy (new perturber weights, or switching it off) leaves the original unchanged
    with torch.no_grad():
        for p in dup.perturbers.parameters():
            p.add_(1.0)
        y_dup = dup(x)
        y_orig = orig(x)
    torch.testing.assert_close(y_orig, y0)
    assert not torch.allclose(y_dup, y0)
    # switching the copy's perturbers off gives the deployed network alone; the original stays perturbed
    orig.set_perturbation_enabled(False)
    with torch.no_grad():
        y_base = orig(x)
    orig.set_perturbation_enabled(True)
    dup.set_perturbation_enabled(False)
    with torch.no_grad():
        torch.testing.assert_close(dup(x), y_base)
        torch.testing.assert_close(orig(x), y0)
    assert not torch.allclose(y_base, y0)

    # removing the copy's hooks leaves the original's hooks in place
    dup.remove_hooks()
    with torch.no_grad():
        torch.testing.assert_close(orig(x), y0)


def test_pickle_round_trip():
    orig = _wrapped()
    x = torch.randn(1, 1, 16, 16)
    buf = io.BytesIO()
    torch.save(orig, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), orig(x))
    assert loaded.latents_out[0] is not None
