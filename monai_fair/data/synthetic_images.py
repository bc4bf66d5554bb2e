# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The image models of the synthetic data: one classification image or one segmentation image with its mask.

Pure functions of their parameters and a random generator (no files): :func:`render_classification_image` draws a
dermoscopy-like or X-ray-like image whose finding shows with a group's contrast, noise and appearance shift;
:func:`render_segmentation_image` an ultrasound-like lesion or a fundus optic disc and its binary mask. The bias
mechanisms, scenarios and dataset writing are in :mod:`monai_fair.data.synthetic`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["render_classification_image", "render_segmentation_image"]


NUISANCE_SD = 0.6


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    return np.meshgrid(c, c, indexing="ij")  # (row, col) in [-1, 1]


def _blob(
    yy: np.ndarray,
    xx: np.ndarray,
    cy: float,
    cx: float,
    ry: float,
    rx: float,
    rot: float,
    harmonics: np.ndarray,
    softness: float,
) -> np.ndarray:
    """Soft mask (0..1) of an ellipse whose radius is modulated by Fourier ``harmonics`` (irregular border)."""
    dy, dx = yy - cy, xx - cx
    c, s = np.cos(rot), np.sin(rot)
    u, v = c * dx + s * dy, -s * dx + c * dy
    theta = np.arctan2(v, u)
    k = np.arange(2, 2 + harmonics.shape[0])[:, None, None]
    mod = 1.0 + np.sum(harmonics[:, 0, None, None] * np.cos(k * theta + harmonics[:, 1, None, None]), axis=0)
    r = np.sqrt((u / rx) ** 2 + (v / ry) ** 2) / np.maximum(mod, 0.3)
    return 1.0 / (1.0 + np.exp((r - 1.0) / softness))


# ---------------------------------------------------------------------------------------------- rendering
def _acquire(img: np.ndarray, acquisition: float, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """Site-B scanner of the ``acquisition`` scenario on a [0, 1] image: gamma ``1 + a``, a colour cast (RGB) or a
    depth gain (grayscale) and faint horizontal grid lines of amplitude ``0.06 a``; all invertible, no noise."""
    if acquisition <= 0:
        return img
    a = float(acquisition)
    img = np.clip(img, 0, 1) ** (1.0 + a)
    if img.ndim == 3:
        img = img * np.array([1.0, 1.0 - 0.12 * a, 1.0 - 0.25 * a])
    else:
        img = img * (1.0 - 0.3 * a * (yy + 1.0) / 2.0)
    lines = 0.06 * a * (np.cos(np.pi * (yy + 1.0) * yy.shape[0] / 4.0) > 0.7)
    return img + (lines[..., None] if img.ndim == 3 else lines)


def render_classification_image(
    modality: str,
    size: int,
    evidence: float,
    contrast: float,
    noise: float,
    shift: float,
    rng: np.random.Generator,
    *,
    cue: float = 0.0,
    specific: bool = False,
    specific_strength: float = 1.0,
    acquisition: float = 0.0,
) -> np.ndarray:
    """One image whose finding has visible strength ``contrast * evidence`` (evidence > 0: positive-looking).

    Args:
        cue: strength of a visible group cue that leaves the finding's contrast unchanged (skin tone of the
            surrounding skin; soft-tissue shadows), used by the ``shortcut`` and ``label_noise`` scenarios.
        specific: show the finding through the group-specific appearance (``underrep`` scenario).
        specific_strength: salience of that appearance in [0, 1] (1: the full pink-red colour / reticular pattern;
            smaller: a fainter one, still measurable, so harder to learn from few cases).
        acquisition: site-B scanner strength (``acquisition`` scenario), see :func:`_acquire`.

    Returns ``(size, size, 3)`` uint8 for dermoscopy, ``(size, size)`` uint16 (12-bit) for xray.
    """
    yy, xx = _grid(size)
    # signed visible strength of the finding: group contrast times the evidence, plus a case-level nuisance that
    # does not depend on the label (natural variation), so a low contrast means a low signal-to-nuisance ratio
    s = contrast * evidence + rng.normal(0.0, NUISANCE_SD)
    t = 1.0 / (1.0 + np.exp(-2.0 * s))  # 0 benign-looking .. 1 malignant/opacity-looking
    # common appearance of the finding; a group-specific case shows a label-free mid value there instead
    tc = 0.5 if specific else t
    if modality == "dermoscopy":
        tn = rng.normal(0, 0.05)
        tone = np.clip(shift + cue + tn, 0, 1)  # appearance shift / group cue: darker skin
        tone_lesion = np.clip(shift + tn, 0, 1)  # only the shift (not the cue) darkens the lesion too
        light, dark = np.array([0.93, 0.76, 0.66]), np.array([0.45, 0.30, 0.22])
        skin = (1 - tone) * light + tone * dark
        img = np.broadcast_to(skin, (size, size, 3)).copy()
        img *= (1 + 0.03 * np.sin(6 * xx + rng.uniform(0, 6)) * np.cos(5 * yy))[..., None]
        # lesion: irregular border and dark, blue-grey variegated colour grow with t
        harm = np.stack([rng.normal(0, 0.03 + 0.15 * tc, 4), rng.uniform(0, 2 * np.pi, 4)], axis=1)
        cy, cx = rng.normal(0, 0.08, 2)
        r = rng.uniform(0.3, 0.5)
        m = _blob(yy, xx, cy, cx, r * rng.uniform(0.8, 1.0), r, rng.uniform(0, np.pi), harm, 0.06)
        benign_col, malig_col = np.array([0.62, 0.42, 0.30]), np.array([0.22, 0.16, 0.22])
        lesion_col = (1 - tc) * benign_col + tc * malig_col
        if specific:  # amelanotic-like: the finding shows as a pink-red colour, not as dark variegation
            pink = benign_col + specific_strength * (np.array([0.85, 0.40, 0.45]) - benign_col)
            lesion_col = (1 - t) * benign_col + t * pink
        lesion_col = lesion_col * (1 - 0.4 * tone_lesion)  # lesions on darker skin are darker too: less contrast
        veil = _blob(yy, xx, cy + rng.normal(0, 0.1), cx + rng.normal(0, 0.1), 0.18, 0.15, 0.0, harm[:2] * 0, 0.1)
        lesion = lesion_col[None, None, :] + (tc * 0.25 * veil)[..., None] * np.array([-0.05, 0.05, 0.25])
        img = img * (1 - m[..., None]) + lesion * m[..., None]
        vignette = np.clip(1.25 - 0.6 * (xx**2 + yy**2), 0, 1)
        img = _acquire(img * vignette[..., None], acquisition, xx, yy)
        img = img + rng.normal(0, noise, img.shape)
        img = ndimage.gaussian_filter(img, sigma=(0.6, 0.6, 0))
        return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
    if modality == "xray":
        body = _blob(yy, xx, 0.1, 0.0, 0.95, 0.8, 0.0, np.zeros((1, 2)), 0.05)
        lungs = sum(_blob(yy, xx, -0.05, sgn * 0.38, 0.6, 0.27, 0.0, np.zeros((1, 2)), 0.06) for sgn in (-1.0, 1.0))
        ribs = 0.06 * np.clip(np.sin(14 * yy + 3 * np.abs(xx)), 0, 1) * lungs
        img = 0.12 + 0.55 * body - 0.35 * lungs + ribs
        # appearance shift / group cue: soft-tissue (breast) shadows over the lower lungs; the shift alone also
        # lowers the exposure (and so the finding's contrast)
        breast = sum(_blob(yy, xx, 0.55, sgn * 0.4, 0.3, 0.35, 0.0, np.zeros((1, 2)), 0.15) for sgn in (-1.0, 1.0))
        img = img + 0.25 * (shift + cue) * breast
        # finding: an opacity inside one lung; its strength grows with the evidence
        side = rng.choice([-1.0, 1.0])
        amp = 0.3 * max(s + 0.35, 0.0)
        op = _blob(
            yy,
            xx,
            rng.uniform(-0.35, 0.3),
            side * 0.38 + rng.normal(0, 0.05),
            0.22,
            0.16,
            rng.uniform(0, np.pi),
            np.stack([rng.normal(0, 0.1, 3), rng.uniform(0, 6, 3)], 1),
            0.2,
        )
        if specific:  # interstitial-like: a diffuse reticular pattern over both lower lungs instead
            reticular = 0.5 * (1 + np.sin(22 * xx) * np.sin(22 * yy)) * np.clip((yy + 0.1) * 2.5, 0, 1)
            img = img + 0.6 * specific_strength * amp * reticular * lungs
        else:
            img = img + amp * op * lungs
        img = _acquire(img * (1.0 - 0.25 * shift), acquisition, xx, yy) + rng.normal(0, noise, img.shape)
        img = ndimage.gaussian_filter(img, 0.7)
        return (np.clip(img, 0, 1) * 4095).round().astype(np.uint16)
    raise ValueError(f"unknown classification modality {modality!r}; use 'dermoscopy' or 'xray'.")


def render_segmentation_image(
    modality: str,
    size: int,
    contrast: float,
    noise: float,
    shift: float,
    rng: np.random.Generator,
    *,
    cue: float = 0.0,
    specific: bool = False,
    acquisition: float = 0.0,
    location: float | None = None,
    distractor: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """One ``(size, size)`` uint8 image and its binary uint8 mask (ultrasound lesion or fundus optic disc).

    Args:
        cue: a visible group cue that leaves the target's contrast unchanged (ultrasound: a bright near-field band;
            fundus: a darker background), ``shortcut`` / ``label_noise`` scenarios.
        specific: the target shows the group-specific appearance (ultrasound: hyperechoic; fundus: dark disc).
        acquisition: site-B scanner strength, see :func:`_acquire`.
        location: in [0, 1], forces the target's position (ultrasound: depth from top to bottom of its range;
            fundus: left disc below 0.5, right disc otherwise); ``None`` keeps the random position.
        distractor: ultrasound only: add a lesion-like but smooth, round cyst without posterior enhancement at the
            mirrored depth (not in the mask), so that where to look is informative (``shortcut`` scenario).
    """
    yy, xx = _grid(size)
    if modality == "ultrasound":
        sector = ((np.arctan2(xx, yy + 1.2) ** 2) < 0.45**2) & (np.hypot(xx, yy + 1.2) < 2.15)
        harm = np.stack([rng.normal(0, 0.08, 4), rng.uniform(0, 2 * np.pi, 4)], axis=1)
        cy, cx = rng.uniform(-0.2, 0.35), rng.uniform(-0.3, 0.3)
        if location is not None:
            cy = -0.2 + 0.55 * float(location)
        ry, rx = rng.uniform(0.18, 0.35), rng.uniform(0.2, 0.42)
        soft = _blob(yy, xx, cy, cx, ry, rx, rng.uniform(-0.4, 0.4), harm, 0.02)
        mask = (soft > 0.5) & sector
        tissue = 0.55 + 0.1 * ndimage.gaussian_filter(rng.normal(0, 1, (size, size)), 3)
        below = ndimage.shift(soft, (size * ry * 0.6, 0), order=1) * (yy > cy)
        if specific:  # hyperechoic lesion with posterior shadowing
            img = tissue + 0.35 * contrast * soft - 0.1 * contrast * below
        else:  # hypoechoic lesion with posterior acoustic enhancement
            img = tissue - 0.4 * contrast * soft + 0.1 * contrast * below
        if distractor:  # drawn last, so the other images are unchanged when off
            dcy, dcx = 0.15 - cy + rng.normal(0, 0.03), -np.sign(cx) * rng.uniform(0.05, 0.3)
            rd = rng.uniform(0.15, 0.25)
            img = img - 0.4 * contrast * _blob(yy, xx, dcy, dcx, rd, rd, 0.0, np.zeros((1, 2)), 0.02)
        img = img + 0.5 * cue * np.exp(-(((yy + 0.75) / 0.25) ** 2))
        speckle = rng.rayleigh(1.0, (size, size)) / 1.25
        img = img * (1 + noise * (speckle - 1) * 2.0)
        img = _acquire(ndimage.gaussian_filter(img, 0.6) * (1.0 - 0.35 * shift), acquisition, xx, yy)
        img = np.where(sector, img, 0.0)
    elif modality == "fundus":
        retina = _blob(yy, xx, 0, 0, 0.95, 0.95, 0, np.zeros((1, 2)), 0.02)
        base = 0.55 * (1.0 - 0.4 * shift) - 0.2 * cue
        img = base + 0.08 * ndimage.gaussian_filter(rng.normal(0, 1, (size, size)), 4)
        cy, cx = rng.normal(0, 0.12), rng.choice([-0.4, 0.4]) + rng.normal(0, 0.05)
        if location is not None:
            cx = (0.4 if location >= 0.5 else -0.4) + (cx - np.sign(cx) * 0.4)
        rdisc = rng.uniform(0.16, 0.24)
        harm = np.stack([rng.normal(0, 0.04, 3), rng.uniform(0, 2 * np.pi, 3)], axis=1)
        soft = _blob(yy, xx, cy, cx, rdisc * rng.uniform(0.9, 1.1), rdisc, 0.0, harm, 0.03)
        mask = soft > 0.5
        ang = np.arctan2(yy - cy, xx - cx)
        vessels = np.clip(np.cos(5 * ang + rng.uniform(0, 6)), 0.9, 1.0) - 0.9
        img = img + (-0.4 if specific else 0.6) * contrast * soft - 1.5 * vessels * (1 - soft)
        img = img + rng.normal(0, noise * 0.5, img.shape)
        img = _acquire(ndimage.gaussian_filter(img, 0.7), acquisition, xx, yy) * retina
    else:
        raise ValueError(f"unknown segmentation modality {modality!r}; use 'ultrasound' or 'fundus'.")
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8), mask.astype(np.uint8)


def _coarse_mask(mask: np.ndarray, radius: int) -> np.ndarray:
    """A coarse annotation: the mask dilated by ``radius`` pixels (scaled to the image size, per 64 pixels)."""
    r = max(1, int(round(radius * mask.shape[0] / 64)))
    return ndimage.binary_dilation(mask, ndimage.generate_binary_structure(2, 1), iterations=r).astype(mask.dtype)
