# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""APPLE networks: zero-initialised residual perturbers (compact and the paper's encoder-decoder), the discriminator
(with the paper's Linear-BatchNorm blocks), hook placement on each network family, deepcopy / pickling."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from monai.networks.nets import BasicUNet, UNet
from torch import nn

from monai_fair.methods.apple import (
    AttributeDiscriminator,
    EncoderDecoderPerturber,
    LatentPerturber,
    PerturbedSegmentor,
    SamLikeSegmentor,
    default_latent_module,
    make_perturbers,
)

torch.manual_seed(0)


def _unet():
    return UNet(2, 1, 2, channels=(8, 16, 32), strides=(2, 2), norm="batch")


def _basicunet():
    return BasicUNet(2, 1, 2, features=(4, 4, 8, 8, 16, 4))


def _sam():
    return SamLikeSegmentor(img_size=32, embed_dim=32, prompt_dim=16, depth=1, num_heads=2)


def _unetr():
    pytest.importorskip("einops")
    from monai.networks.nets import UNETR

    return UNETR(1, 2, img_size=(32, 32), spatial_dims=2, feature_size=8, hidden_size=48, mlp_dim=96, num_heads=4)


def _swin():
    pytest.importorskip("einops")
    from monai.networks.nets import SwinUNETR

    return SwinUNETR(
        in_channels=1, out_channels=2, spatial_dims=2, feature_size=12, depths=(1, 1, 1, 1), num_heads=(3, 3, 3, 3)
    )


# family -> (builder, expected default module, output_index, latent shape for a 2x1x32x32 input (64 for swin), type)
FAMILIES = {
    "unet": (_unet, "model.1.submodule.1.submodule", None, (2, 32, 8, 8), "spatial"),
    "basicunet": (_basicunet, "down_4", None, (2, 16, 2, 2), "spatial"),
    "sam_like": (_sam, "image_encoder", None, (2, 16, 8, 8), "spatial"),
    "unetr": (_unetr, "vit", 0, (2, 4, 48), "token"),
    "swinunetr": (_swin, "encoder10", None, (2, 192, 2, 2), "spatial"),
}


def _make_perturber(shape, kind):
    if kind == "token":
        return LatentPerturber(shape[-1], latent_type="token")
    return LatentPerturber(shape[1], latent_type="spatial", spatial_dims=len(shape) - 2)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_hook_placement(family):
    build, name, index, shape, kind = FAMILIES[family]
    net = build().eval()
    assert default_latent_module(net) == name
    x = torch.rand(2, 1, 64 if family == "swinunetr" else 32, 64 if family == "swinunetr" else 32)
    # the module's own output, captured independently of the wrapper
    captured = {}
    module = dict(net.named_modules())[name]
    h = module.register_forward_hook(lambda m, a, o: captured.__setitem__("f", o[index] if index is not None else o))
    with torch.no_grad():
        ref = net(x)
    h.remove()
    assert tuple(captured["f"].shape) == shape

    pert = _make_perturber(shape, kind)
    wrapped = PerturbedSegmentor(net, pert, output_index=index)  # default module
    with torch.no_grad():
        out = wrapped(x)
    # zero-initialised last layer: APPLE starts exactly at the deployed model
    # (bit-exact for conv nets; attention kernels may reorder float sums when the input's memory layout differs)
    if family in ("unet", "basicunet"):
        assert torch.equal(out, ref)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(wrapped.latents_in[0], captured["f"], rtol=0, atol=0)

    # a non-zero perturbation reaches the decoder: the output changes, and gradients reach only the perturber
    last = pert.net[-1]
    nn.init.normal_(last.weight, std=0.5)
    out2 = wrapped(x)
    assert not torch.allclose(out2, ref)
    out2.float().pow(2).mean().backward()
    assert last.weight.grad is not None and last.weight.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in net.parameters())
    delta = wrapped.perturbations()[0]
    torch.testing.assert_close(delta, pert.perturbation(wrapped.latents_in[0]))


def test_perturber_zero_init_and_shapes():
    f = torch.randn(3, 8, 5, 5)
    p = LatentPerturber(8, spatial_dims=2)
    assert torch.equal(p(f), f) and torch.equal(p.perturbation(f), torch.zeros_like(f))
    t = torch.randn(3, 7, 12)
    pt = LatentPerturber(12, latent_type="token")
    assert torch.equal(pt(t), t)
    p3 = LatentPerturber(4, spatial_dims=3, num_blocks=3)
    v = torch.randn(2, 4, 3, 3, 3)
    assert p3(v).shape == v.shape
    # a 1x1 bottleneck with batch 1 works (group norm, not instance/batch norm)
    nn.init.normal_(p.net[-1].weight)
    assert p(torch.randn(1, 8, 1, 1)).shape == (1, 8, 1, 1)
    with pytest.raises(ValueError, match="channels=8"):
        p(torch.randn(2, 9, 4, 4))
    with pytest.raises(ValueError, match="token"):
        pt(torch.randn(2, 12, 4, 4))
    with pytest.raises(ValueError, match="Unsupported option 'graph'"):
        LatentPerturber(4, latent_type="graph")
    # the default hidden width spans the latent (a narrower one confines G_p to a subspace)
    assert p.net[0].out_channels == 8 and LatentPerturber(128).net[0].out_channels == 128


def test_discriminator_pooling_matches_hand_computation():
    d = AttributeDiscriminator([3, 5], 2, latent_types=["spatial", "token"], hidden_channels=(), input_norm=False)
    a, b = torch.randn(4, 3, 6, 6), torch.randn(4, 9, 5)
    feats = torch.cat([a.mean((2, 3)), a.amax((2, 3)), b.mean(1), b.amax(1)], dim=1)
    lin = d.mlp[-1]
    torch.testing.assert_close(d([a, b]), feats @ lin.weight.T + lin.bias)
    # input standardisation: batch statistics in training, running statistics in eval mode and for one sample
    dn = AttributeDiscriminator([3, 5], 2, latent_types=["spatial", "token"], hidden_channels=())
    lin, eps = dn.mlp[-1], dn.norm.eps
    z = (feats - feats.mean(0)) / (feats.var(0, unbiased=False) + eps).sqrt()
    torch.testing.assert_close(dn.train()([a, b]), z @ lin.weight.T + lin.bias)
    run_mean, run_var = 0.1 * feats.mean(0), 0.9 + 0.1 * feats.var(0, unbiased=True)  # momentum 0.1 from (0, 1)
    z_eval = (feats[:1] - run_mean) / (run_var + eps).sqrt()
    torch.testing.assert_close(dn.eval()([a[:1], b[:1]]), z_eval @ lin.weight.T + lin.bias)
    torch.testing.assert_close(dn.train()([a[:1], b[:1]]), z_eval @ lin.weight.T + lin.bias)
    with torch.no_grad():  # monitoring passes do not move the running statistics
        dn([a, b])
    torch.testing.assert_close(dn.norm.running_mean, run_mean)
    with pytest.raises(ValueError, match="expected 2 latents"):
        d(a)
    with pytest.raises(ValueError, match="spatial latent"):
        d([torch.randn(4, 4, 6, 6), b])
    with pytest.raises(ValueError, match="num_groups"):
        AttributeDiscriminator(3, num_groups=1)


class _TupleTokenNet(nn.Module):
    """A toy encoder returning ``(tokens, [hidden])`` like MONAI's ViT, and a decoder reading the tokens."""

    def __init__(self):
        super().__init__()
        self.encoder = _TupleEncoder()
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        tokens, hidden = self.encoder(x)
        return self.head(tokens).mean(1) + 0 * hidden[0].sum()


class _TupleEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 6)

    def forward(self, x):
        t = self.proj(x)
        return t, [t * 2]


def test_tuple_token_latent_and_errors():
    net = _TupleTokenNet()
    pert = LatentPerturber(6, latent_type="token")
    nn.init.constant_(pert.net[-1].bias, 1.0)
    w = PerturbedSegmentor(net, pert, latent_module="encoder", output_index=0)
    x = torch.randn(2, 5, 4)
    out = w(x)
    t = net.encoder.proj(x)
    expected = net.head(t + pert.perturbation(t)).mean(1)
    torch.testing.assert_close(out, expected)
    with pytest.raises(ValueError, match="no module named 'decoder'"):
        PerturbedSegmentor(_TupleTokenNet(), LatentPerturber(6, latent_type="token"), latent_module="decoder")
    with pytest.raises(ValueError, match="no default latent module"):
        default_latent_module(_TupleTokenNet())
    # disabled perturbation = deployed model alone
    w.set_perturbation_enabled(False)
    torch.testing.assert_close(w(x), net.head(t).mean(1))


def test_skip_connections_and_state_dict_roundtrip(tmp_path):
    """Perturb the first encoder stage (a skip) and the bottleneck of BasicUNet; reload from checkpoints."""
    net = _basicunet()
    perts = [LatentPerturber(4), LatentPerturber(16)]
    for p in perts:
        nn.init.normal_(p.net[-1].weight, std=0.1)
    w = PerturbedSegmentor(net, perts, latent_module=["conv_0", "down_4"])
    x = torch.rand(2, 1, 32, 32)
    out = w(x)
    assert [tuple(f.shape) for f in w.latents_out] == [(2, 4, 32, 32), (2, 16, 2, 2)]
    d = AttributeDiscriminator([4, 16], num_groups=3)
    assert d(w.latents_out).shape == (2, 3)
    torch.save(net.state_dict(), tmp_path / "base.pt")
    torch.save(w.perturbers.state_dict(), tmp_path / "pert.pt")
    torch.save(w.state_dict(), tmp_path / "model.pt")
    w2 = PerturbedSegmentor(
        _basicunet(),
        [LatentPerturber(4), LatentPerturber(16)],
        ["conv_0", "down_4"],
        base_weights=tmp_path / "base.pt",
        perturber_weights=tmp_path / "pert.pt",
    )
    torch.testing.assert_close(w2(x), out)
    w3 = PerturbedSegmentor(_basicunet(), [LatentPerturber(4), LatentPerturber(16)], ["conv_0", "down_4"])
    w3.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    torch.testing.assert_close(w3(x), out)


def test_frozen_network_stays_in_eval_mode():
    net = _unet()
    w = PerturbedSegmentor(net, LatentPerturber(32))
    w.train()
    assert w.training and w.perturbers.training and not net.training
    assert not any(m.training for m in net.modules())


def test_sam_like_prompts_and_optional_segment_anything():
    from monai.utils import OptionalImportError, optional_import

    net = _sam().eval()
    x = torch.rand(2, 1, 32, 32)
    out = net(x)
    assert out.shape == (2, 2, 32, 32) and torch.equal(out[:, 0], torch.zeros_like(out[:, 0]))
    boxed = net(x, boxes=torch.tensor([[2.0, 2.0, 20.0, 20.0], [0.0, 0.0, 31.0, 31.0]]))
    assert boxed.shape == out.shape and not torch.allclose(boxed, out)
    with pytest.raises(ValueError, match="img_size=32"):
        net(torch.rand(1, 1, 64, 64))
    # the wrapper of a real segment_anything model keeps the sub-module names, so state-dict keys match
    wrapped = SamLikeSegmentor.from_sam(net)
    assert set(wrapped.state_dict()) == set(net.state_dict())
    if not optional_import("segment_anything")[1]:
        with pytest.raises(OptionalImportError):
            SamLikeSegmentor.from_sam_checkpoint("vit_b", "missing.pth")


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


@pytest.mark.parametrize("dims, shape", [(2, (3, 128, 8, 8)), (3, (2, 64, 4, 4, 4)), (2, (2, 32, 1, 1))])
def test_encoder_decoder_perturber_shape_identity_and_gradients(dims, shape):
    g = EncoderDecoderPerturber(shape[1], spatial_dims=dims)
    assert [b[0].out_channels for b in g.encoder] == [32, 64, 128] and len(g.bottleneck) == 4
    assert [b[0].out_channels for b in g.decoder] + [g.out.out_channels] == [64, 32, shape[1]]  # 3 decoder layers
    f = torch.randn(*shape)
    assert torch.equal(g(f), f)  # zero-initialised output layer: training starts at f_p = f_o
    g(f).pow(2).sum().backward()
    assert g.out.weight.grad is not None and g.out.weight.grad.abs().sum() > 0  # the residual path trains it
    torch.nn.init.normal_(g.out.weight, std=0.1)
    assert g.perturbation(f).shape == f.shape and not torch.equal(g(f), f)
    with pytest.raises(ValueError, match="check latent_module"):
        g(torch.randn(2, shape[1] + 1, *shape[2:]))


def test_encoder_decoder_perturber_tokens_and_bad_arguments():
    g = EncoderDecoderPerturber(48, latent_type="token")
    f = torch.randn(2, 10, 48)
    assert torch.equal(g(f), f)
    with pytest.raises(ValueError, match="encoder_strides"):
        EncoderDecoderPerturber(16, encoder_strides=(1, 2))
    with pytest.raises(ValueError, match="must be >= 1"):
        EncoderDecoderPerturber(16, encoder_channels=())
    assert isinstance(make_perturbers([16], arch="encoder_decoder")[0], EncoderDecoderPerturber)
    assert isinstance(make_perturbers([16], arch="compact")[0], LatentPerturber)
    with pytest.raises(ValueError, match="encoder_decoder"):
        make_perturbers([16], arch="unet")


def test_linear_batchnorm_discriminator_and_its_running_statistics():
    d = AttributeDiscriminator(32, 2, hidden_channels=(128, 64), hidden_norm=True)
    kinds = [type(m).__name__ for m in d.mlp]
    assert kinds.count("Linear") == 3 and kinds.count("_GradOnlyBatchNorm1d") == 2 and d.mlp[-1].out_features == 2
    bn = d.mlp[1]
    d.train()
    x = torch.randn(8, 32, 4, 4)
    with torch.no_grad():  # monitoring passes do not move the running statistics
        d(x)
    assert torch.equal(bn.running_mean, torch.zeros(128))
    d(x).sum().backward()
    assert not torch.equal(bn.running_mean, torch.zeros(128)) and bn.weight.grad is not None
    assert d(torch.randn(1, 32, 4, 4)).shape == (1, 2)  # one training sample: running statistics, no error
