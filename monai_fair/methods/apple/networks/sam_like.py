# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""A small, randomly initialised SAM-like segmentor (ViT image encoder, prompt encoder, mask decoder).

APPLE (Xu et al., arXiv 2403.05114) is evaluated on "two SAM-like" segmentors, where the latent is the image
embedding that the image encoder hands to the mask decoder. No weights can be downloaded in the environments
monai-fair is tested in, so this module builds a *small* model with the structure of Segment Anything
(Kirillov et al., ICCV 2023): a ViT image encoder with a convolutional neck, a prompt encoder (random-Fourier
positional encoding, box / point embeddings, a learned "no mask" dense embedding) and a two-way-transformer mask
decoder with output tokens, hypernetwork MLPs and an IoU head. Sub-module and parameter names follow
``segment_anything.modeling`` so that a real checkpoint's state dict maps onto it (see :data:`SAM_KEY_MAPPING`
and the bundle README); a real ViT-B/L/H image encoder uses windowed attention with relative positions, which
this small encoder does not implement, so with a real checkpoint build the real model with
``segment_anything.sam_model_registry`` and wrap it with :class:`SamLikeSegmentor` (``from_sam``).

The wrapper's output is a 2-channel logit map ``[0, m]`` at the input resolution (``softmax`` of it equals
``sigmoid(m)`` for the foreground), so SAM-like and U-Net-like segmentors share losses, post-processing and
metrics. Without prompts the whole image is segmented (the "everything" dense embedding of SAM); a box prompt
``(B, 4)`` in input pixel coordinates (x0, y0, x1, y1) may be passed as ``boxes``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from monai.utils import optional_import
from torch import nn

segment_anything, _ = optional_import("segment_anything")

__all__ = ["SamLikeSegmentor", "TinySamImageEncoder", "TinySamPromptEncoder", "TinySamMaskDecoder", "SAM_KEY_MAPPING"]

#: How the state dict of a real ``segment_anything`` model maps onto :class:`SamLikeSegmentor` built with
#: ``from_sam(sam)``: the key names are identical (``image_encoder.*``, ``prompt_encoder.*``, ``mask_decoder.*``),
#: because the real modules are used as they are. For the small model below, every key of
#: ``prompt_encoder.*`` (except ``mask_downscaling.*``) and ``mask_decoder.*`` has SAM's name and meaning, and the
#: image encoder's ``patch_embed.proj``, ``pos_embed``, ``blocks.i.{norm1,attn.qkv,attn.proj,norm2,mlp.lin1,
#: mlp.lin2}`` and ``neck.{0,1,2,3}`` too; SAM's ``blocks.i.attn.rel_pos_{h,w}`` have no counterpart.
SAM_KEY_MAPPING: dict[str, str] = {
    "image_encoder.patch_embed.proj": "image_encoder.patch_embed.proj",
    "image_encoder.pos_embed": "image_encoder.pos_embed",
    "image_encoder.blocks.{i}.attn.qkv": "image_encoder.blocks.{i}.attn.qkv",
    "image_encoder.blocks.{i}.attn.rel_pos_h": "(not used: global attention without relative positions)",
    "image_encoder.neck.{0,1,2,3}": "image_encoder.neck.{0,1,2,3}",
    "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix": "same",
    "prompt_encoder.point_embeddings.{0..3}, not_a_point_embed, no_mask_embed": "same",
    "prompt_encoder.mask_downscaling.*": "(not used: no mask prompts)",
    "mask_decoder.*": "same",
}


class LayerNorm2dSam(nn.Module):
    """Channel LayerNorm of ``(B, C, H, W)`` maps (SAM's ``LayerNorm2d``: ``weight``, ``bias``)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class _MLPBlock(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.lin1, self.lin2, self.act = nn.Linear(dim, hidden), nn.Linear(hidden, dim), nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(self.act(self.lin1(x)))


class _PatchEmbed(nn.Module):
    def __init__(self, patch: int, in_chans: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)  # B, H, W, C


class _EncoderAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv, self.proj = nn.Linear(dim, dim * 3), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(b, h, w, c))


class _EncoderBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn = _EncoderAttention(dim, num_heads)
        self.mlp = _MLPBlock(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinySamImageEncoder(nn.Module):
    """ViT image encoder with SAM's neck: ``(B, C_in, H, W) -> (B, out_chans, H/patch, W/patch)``."""

    def __init__(
        self,
        img_size: int = 64,
        patch_size: int = 4,
        in_chans: int = 1,
        embed_dim: int = 64,
        depth: int = 2,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        out_chans: int = 32,
    ) -> None:
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"img_size {img_size} must be a multiple of patch_size {patch_size}.")
        self.img_size, self.patch_size = img_size, patch_size
        g = img_size // patch_size
        self.patch_embed = _PatchEmbed(patch_size, in_chans, embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, g, g, embed_dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList(_EncoderBlock(embed_dim, num_heads, mlp_ratio) for _ in range(depth))
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dim, out_chans, kernel_size=1, bias=False),
            LayerNorm2dSam(out_chans),
            nn.Conv2d(out_chans, out_chans, kernel_size=3, padding=1, bias=False),
            LayerNorm2dSam(out_chans),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        if x.shape[1:3] != self.pos_embed.shape[1:3]:
            raise ValueError(
                f"input of spatial size {tuple(x.shape[1:3])} patches; this encoder was built for "
                f"img_size={self.img_size} (resize the input, e.g. with Resized)."
            )
        x = x + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return self.neck(x.permute(0, 3, 1, 2))


class _RandomFourierPE(nn.Module):
    def __init__(self, num_pos_feats: int) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, num_pos_feats))

    def _encode(self, coords: torch.Tensor) -> torch.Tensor:  # coords in [0, 1]
        coords = (2 * coords - 1) @ self.positional_encoding_gaussian_matrix.to(coords.dtype)
        coords = 2 * math.pi * coords
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)

    def grid(self, h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) / h
        xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) / w
        pe = self._encode(torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1))
        return pe.permute(2, 0, 1)  # C, H, W

    def points(self, coords: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        coords = coords.clone().float()
        coords[..., 0] = coords[..., 0] / size[1]
        coords[..., 1] = coords[..., 1] / size[0]
        return self._encode(coords)


class TinySamPromptEncoder(nn.Module):
    """SAM-style prompt encoder: box corners -> sparse tokens; no mask prompt -> learned dense embedding."""

    def __init__(self, embed_dim: int = 32, image_embedding_size: int = 16, input_image_size: int = 64) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.image_embedding_size = (image_embedding_size, image_embedding_size)
        self.input_image_size = (input_image_size, input_image_size)
        self.pe_layer = _RandomFourierPE(embed_dim // 2)
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def get_dense_pe(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        return self.pe_layer.grid(*self.image_embedding_size, device=device, dtype=dtype).unsqueeze(0)

    def forward(
        self, batch_size: int, boxes: torch.Tensor | None, device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if boxes is not None:
            corners = self.pe_layer.points(boxes.reshape(-1, 2, 2) + 0.5, self.input_image_size)
            corners = corners + torch.cat([self.point_embeddings[2].weight, self.point_embeddings[3].weight])
            sparse = corners.to(dtype)
        else:
            sparse = torch.empty(batch_size, 0, self.embed_dim, device=device, dtype=dtype)
        dense = (
            self.no_mask_embed.weight.to(dtype).reshape(1, -1, 1, 1).expand(batch_size, -1, *self.image_embedding_size)
        )
        return sparse, dense


class _Attention(nn.Module):
    """SAM decoder attention with ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj`` and an internal down-scaling."""

    def __init__(self, dim: int, num_heads: int, downsample_rate: int = 1) -> None:
        super().__init__()
        inner = dim // downsample_rate
        self.num_heads = num_heads
        self.q_proj, self.k_proj, self.v_proj = nn.Linear(dim, inner), nn.Linear(dim, inner), nn.Linear(dim, inner)
        self.out_proj = nn.Linear(inner, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        out = F.scaled_dot_product_attention(
            self._split(self.q_proj(q)), self._split(self.k_proj(k)), self._split(self.v_proj(v))
        )
        b, h, n, c = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, h * c))


class _TwoWayBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_dim: int, skip_first_layer_pe: bool) -> None:
        super().__init__()
        self.self_attn = _Attention(dim, num_heads)
        self.cross_attn_token_to_image = _Attention(dim, num_heads, 2)
        self.cross_attn_image_to_token = _Attention(dim, num_heads, 2)
        self.mlp = _MLPBlock(dim, mlp_dim)
        self.norm1, self.norm2, self.norm3, self.norm4 = (nn.LayerNorm(dim) for _ in range(4))
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(self, queries, keys, query_pe, key_pe):
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)
        queries = self.norm2(queries + self.cross_attn_token_to_image(queries + query_pe, keys + key_pe, keys))
        queries = self.norm3(queries + self.mlp(queries))
        keys = self.norm4(keys + self.cross_attn_image_to_token(keys + key_pe, queries + query_pe, queries))
        return queries, keys


class _TwoWayTransformer(nn.Module):
    def __init__(self, depth: int, dim: int, num_heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_TwoWayBlock(dim, num_heads, mlp_dim, i == 0) for i in range(depth))
        self.final_attn_token_to_image = _Attention(dim, num_heads, 2)
        self.norm_final_attn = nn.LayerNorm(dim)

    def forward(self, image: torch.Tensor, image_pe: torch.Tensor, tokens: torch.Tensor):
        image, image_pe = image.flatten(2).transpose(1, 2), image_pe.flatten(2).transpose(1, 2)
        queries, keys = tokens, image
        for layer in self.layers:
            queries, keys = layer(queries, keys, tokens, image_pe)
        queries = self.norm_final_attn(
            queries + self.final_attn_token_to_image(queries + tokens, keys + image_pe, keys)
        )
        return queries, keys


class _MLP(nn.Module):
    def __init__(self, dims: list[int]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else F.relu(layer(x))
        return x


class TinySamMaskDecoder(nn.Module):
    """SAM's mask decoder: IoU + mask tokens, two-way transformer, x4 upscaling, hypernetwork MLPs."""

    def __init__(
        self,
        transformer_dim: int = 32,
        num_multimask_outputs: int = 3,
        depth: int = 2,
        num_heads: int = 4,
        mlp_dim: int = 128,
    ) -> None:
        super().__init__()
        d = transformer_dim
        self.transformer = _TwoWayTransformer(depth, d, num_heads, mlp_dim)
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, d)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, d)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(d, d // 4, kernel_size=2, stride=2),
            LayerNorm2dSam(d // 4),
            nn.GELU(),
            nn.ConvTranspose2d(d // 4, d // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(_MLP([d, d, d, d // 8]) for _ in range(self.num_mask_tokens))
        self.iou_prediction_head = _MLP([d, 64, 64, self.num_mask_tokens])

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse: torch.Tensor,
        dense: torch.Tensor,
        multimask_output: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b = image_embeddings.shape[0]
        out_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0).to(sparse.dtype)
        tokens = torch.cat([out_tokens.unsqueeze(0).expand(b, -1, -1), sparse], dim=1)
        src = image_embeddings + dense
        pos = image_pe.expand(b, -1, -1, -1)
        _, c, h, w = src.shape
        hs, src = self.transformer(src, pos, tokens)
        iou_out, mask_out = hs[:, 0], hs[:, 1 : 1 + self.num_mask_tokens]
        up = self.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
        hyper = torch.stack([m(mask_out[:, i]) for i, m in enumerate(self.output_hypernetworks_mlps)], dim=1)
        masks = (hyper @ up.flatten(2)).reshape(b, -1, *up.shape[2:])
        iou = self.iou_prediction_head(iou_out)
        sl = slice(1, None) if multimask_output else slice(0, 1)
        return masks[:, sl], iou[:, sl]


class SamLikeSegmentor(nn.Module):
    """Promptable SAM-like segmentor returning 2-channel logits ``[0, m]`` at the input resolution.

    Sub-modules ``image_encoder``, ``prompt_encoder`` and ``mask_decoder`` are named as in Segment Anything;
    APPLE perturbs the output of ``image_encoder`` (:func:`monai_fair.methods.apple.default_latent_module`).

    Args:
        in_channels: image channels (1 for the synthetic ultrasound data; the encoder's patch embedding).
        img_size: input size the encoder is built for (square).
        patch_size, embed_dim, depth, num_heads: ViT encoder size.
        prompt_dim: image-embedding channels (SAM: 256) = decoder transformer width.
        decoder_depth: two-way transformer depth (SAM: 2).
        pixel_mean, pixel_std: input normalisation applied inside the model (SAM does the same).

    Use :meth:`from_sam` to wrap a real ``segment_anything`` ``Sam`` model (and its checkpoint).
    """

    def __init__(
        self,
        in_channels: int = 1,
        img_size: int = 64,
        patch_size: int = 4,
        embed_dim: int = 64,
        depth: int = 2,
        num_heads: int = 4,
        prompt_dim: int = 32,
        decoder_depth: int = 2,
        pixel_mean: float = 0.0,
        pixel_std: float = 1.0,
    ) -> None:
        super().__init__()
        self.image_encoder = TinySamImageEncoder(
            img_size, patch_size, in_channels, embed_dim, depth, num_heads, out_chans=prompt_dim
        )
        self.prompt_encoder = TinySamPromptEncoder(prompt_dim, img_size // patch_size, img_size)
        self.mask_decoder = TinySamMaskDecoder(
            prompt_dim, depth=decoder_depth, num_heads=num_heads, mlp_dim=4 * prompt_dim
        )
        self.pixel_mean, self.pixel_std = float(pixel_mean), float(pixel_std)
        self._real_sam = False

    @classmethod
    def from_sam(cls, sam: nn.Module, pixel_mean: float = 0.0, pixel_std: float = 1.0) -> SamLikeSegmentor:
        """Wrap a real ``segment_anything`` ``Sam`` (e.g. ``sam_model_registry["vit_b"](checkpoint=...)``).

        The input must then be 3-channel at the encoder's ``img_size`` (1024), scaled as SAM expects.
        """
        obj = cls.__new__(cls)
        nn.Module.__init__(obj)
        obj.image_encoder, obj.prompt_encoder, obj.mask_decoder = (
            sam.image_encoder,
            sam.prompt_encoder,
            sam.mask_decoder,
        )
        obj.pixel_mean, obj.pixel_std, obj._real_sam = float(pixel_mean), float(pixel_std), True
        return obj

    @classmethod
    def from_sam_checkpoint(cls, model_type: str, checkpoint: str, **kwargs: Any) -> SamLikeSegmentor:
        """Build ``segment_anything.sam_model_registry[model_type](checkpoint=...)`` and wrap it (:meth:`from_sam`).

        Raises:
            OptionalImportError: when ``segment_anything`` is not installed.
        """
        registry = segment_anything.sam_model_registry  # raises OptionalImportError without the package
        if model_type not in registry:
            raise ValueError(f"unknown SAM model_type {model_type!r}; choose one of {sorted(registry)}.")
        return cls.from_sam(registry[model_type](checkpoint=checkpoint), **kwargs)

    def forward(self, x: torch.Tensor, boxes: torch.Tensor | None = None) -> torch.Tensor:
        size = x.shape[2:]
        emb = self.image_encoder((x - self.pixel_mean) / self.pixel_std)
        if self._real_sam:
            # segment_anything's decoder repeats one image embedding per prompt set, so images go one at a time
            pe = self.prompt_encoder.get_dense_pe()
            out = []
            for i in range(emb.shape[0]):
                box = None if boxes is None else boxes[i : i + 1]
                sparse, dense = self.prompt_encoder(points=None, boxes=box, masks=None)
                out.append(
                    self.mask_decoder(
                        image_embeddings=emb[i : i + 1],
                        image_pe=pe,
                        sparse_prompt_embeddings=sparse,
                        dense_prompt_embeddings=dense,
                        multimask_output=False,
                    )[0]
                )
            masks = torch.cat(out, dim=0)
        else:
            sparse, dense = self.prompt_encoder(x.shape[0], boxes, x.device, emb.dtype)
            pe = self.prompt_encoder.get_dense_pe(x.device, emb.dtype)
            masks, _ = self.mask_decoder(emb, pe, sparse, dense, multimask_output=False)
        m = F.interpolate(masks, size=size, mode="bilinear", align_corners=False)
        return torch.cat([torch.zeros_like(m), m], dim=1)

    def extra_repr(self) -> Any:
        return f"real_sam={self._real_sam}"
