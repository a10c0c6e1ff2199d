"""Image quality measures on images in [0, 1] (numpy and scipy only)."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import binary_erosion, gaussian_filter, laplace

from tfinpaint.errors import ArgumentError

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # an 11x11 window, as Wang et al. (2004) and scikit-image use


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two images in [0, 1]; inf when they are equal."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity (Wang et al., 2004) of two `[H, W, C]` images in [0, 1]:
    Gaussian window (sigma 1.5), per channel, averaged away from a 5-pixel border."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 3:
        raise ArgumentError(f"Expected two images of one shape [H, W, C], got {a.shape} and {b.shape}")

    def blur(x):
        return gaussian_filter(x, sigma=(SSIM_SIGMA, SSIM_SIGMA, 0), truncate=SSIM_TRUNCATE, mode="reflect")

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    pad = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
    if min(a.shape[:2]) > 2 * pad:
        s = s[pad:-pad, pad:-pad]
    return float(s.mean())


def detail(image: np.ndarray, where: np.ndarray | None = None) -> float:
    """Mean absolute Laplacian (4 neighbours, per channel) of an `[H, W, C]` image over the
    pixels `where` is True (all by default): how much fine detail, or noise, it holds."""
    x = np.asarray(image, np.float64)
    lap = np.abs(np.stack([laplace(x[..., c], mode="reflect") for c in range(x.shape[-1])], axis=-1))
    return float(lap.mean() if where is None else lap[where].mean())


def sharpness(image: np.ndarray, hole: np.ndarray, erode: int = 2) -> float:
    """Mean squared Laplacian (3x3, 4 neighbours) of an `[H, W, C]` image in [0, 1] as grey
    levels (0-255, ITU-R 601 luma), over the `[H, W]` `hole` eroded by `erode` pixels so that
    its edge does not count; NaN when nothing is left of the hole."""
    x = np.asarray(image, np.float64) * 255.0
    grey = x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114 if x.shape[-1] == 3 else x[..., 0]
    inner = binary_erosion(np.asarray(hole, bool), iterations=erode) if erode else np.asarray(hole, bool)
    if not inner.any():
        return float("nan")
    return float(np.mean(laplace(grey, mode="reflect")[inner] ** 2))


def mean_colour_fill(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The simplest baseline: the hole painted in the mean colour of the known pixels."""
    known = np.asarray(mask).reshape(mask.shape[:2]) > 0.5
    out = np.array(image, dtype=np.float64, copy=True)
    if known.any():
        out[~known] = out[known].mean(axis=0)
    return out


def relative_sharpness(images: np.ndarray, references: np.ndarray, erode: int = 2) -> float:
    """How much fine detail `images` `[N, H, W, C]` in [0, 1] carry against `references`
    (say, G's samples against training images): the median over images of `sharpness` over
    the whole image (its border eroded by `erode` pixels) over the references' median. 1: as
    detailed; below 1 smoother; above 1 noisier or busier."""
    whole = np.ones(np.shape(images)[1:3], bool)
    ours = np.median([sharpness(x, whole, erode) for x in images])
    theirs = np.median([sharpness(x, whole, erode) for x in references])
    return float(ours / max(theirs, 1e-12))
