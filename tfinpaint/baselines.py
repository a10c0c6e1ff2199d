"""Local inpainting methods the paper compares with (its Figures 5 and 6).

Numpy in, numpy out: images `[H, W, C]` in [0, 1], masks `[H, W, 1]` with 1 = known.
Every method returns an image whose known pixels are those of the input and reads
nothing of the input's hole. OpenCV (Telea, Navier-Stokes) and scikit-image
(biharmonic) are optional: `pip install -e .[eval]`.
"""

from __future__ import annotations

import numpy as np

from tfinpaint.errors import MissingDependency


def _known(mask: np.ndarray) -> np.ndarray:
    return np.asarray(mask).reshape(mask.shape[:2]) > 0.5


def _start(image: np.ndarray, known: np.ndarray) -> np.ndarray:
    """The image with its hole set to the mean of the known pixels (never reading the hole)."""
    x = np.array(image, dtype=np.float64, copy=True)
    x[~known] = x[known].mean(axis=0) if known.any() else 0.5
    return x


def _grad(x):
    gx = np.zeros_like(x)
    gy = np.zeros_like(x)
    gx[:, :-1] = x[:, 1:] - x[:, :-1]
    gy[:-1] = x[1:] - x[:-1]
    return gx, gy


def _div(px, py):
    # the negative adjoint of _grad
    dx = np.zeros_like(px)
    dy = np.zeros_like(py)
    dx[:, 0] = px[:, 0]
    dx[:, 1:-1] = px[:, 1:-1] - px[:, :-2]
    dx[:, -1] = -px[:, -2]
    dy[0] = py[0]
    dy[1:-1] = py[1:-1] - py[:-2]
    dy[-1] = -py[-2]
    return dx + dy


def total_variation(
    image: np.ndarray, mask: np.ndarray, tol: float = 1e-5, max_iterations: int = 5000
) -> tuple[np.ndarray, int]:
    """TV inpainting: min TV(x) with x = y on the known pixels (isotropic TV per channel).

    Solved by the primal-dual method of Chambolle and Pock (2011) with tau = sigma =
    1/sqrt(8) (||grad||^2 <= 8). Stops when the relative change of x in one step falls
    below `tol`, or after `max_iterations`.

    Returns:
        The filled image and the number of iterations taken.
    """
    known = _known(mask)
    y = np.asarray(image, np.float64)
    x = _start(y, known)
    x_bar = x.copy()
    px, py = np.zeros_like(x), np.zeros_like(x)
    step = 1.0 / np.sqrt(8.0)
    for it in range(1, max_iterations + 1):
        gx, gy = _grad(x_bar)
        px, py = px + step * gx, py + step * gy
        norm = np.maximum(1.0, np.sqrt(px**2 + py**2))
        px, py = px / norm, py / norm
        x_new = x + step * _div(px, py)
        x_new[known] = y[known]
        change = np.linalg.norm(x_new - x) / max(np.linalg.norm(x_new), 1e-12)
        x_bar = 2 * x_new - x
        x = x_new
        if change < tol:
            return x, it
    return x, max_iterations


def low_rank(
    image: np.ndarray, mask: np.ndarray, tol: float = 1e-4, max_iterations: int = 500
) -> tuple[np.ndarray, int]:
    """Low-rank matrix completion of each channel by singular value thresholding
    (Cai, Candes and Shen, 2010): threshold 5 sqrt(HW), step 1.2 HW / |known|.
    Stops when the relative error on the known pixels falls below `tol`.

    Returns:
        The filled image and the number of iterations taken.
    """
    known = _known(mask)
    y = np.asarray(image, np.float64)
    h, w, c = y.shape
    out = _start(y, known)
    if not known.any() or known.all():
        return out, 0
    tau = 5.0 * np.sqrt(h * w)
    delta = min(1.2 * h * w / known.sum(), 1.9)
    iterations = 0
    for ch in range(c):
        m = np.where(known, y[..., ch], 0.0)
        z = delta * m  # Y_0 = k0 delta P(M) with k0 = 1
        norm_m = max(np.linalg.norm(m), 1e-12)
        x = np.zeros_like(m)
        it = 0
        while it < max_iterations:
            it += 1
            u, s, vt = np.linalg.svd(z, full_matrices=False)
            x = (u * np.maximum(s - tau, 0.0)) @ vt
            residual = np.where(known, m - x, 0.0)
            if np.linalg.norm(residual) / norm_m < tol:
                break
            z = z + delta * residual
        iterations = max(iterations, it)
        out[..., ch] = np.where(known, y[..., ch], x)
    return out, iterations


NEAREST_CHUNK = 1024  # candidates compared at once


def nearest_neighbour(image: np.ndarray, mask: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, int]:
    """The paper's Figure 6: the candidate (training image) closest to the image in L2 over
    the known pixels, pasted into the hole.

    Args:
        candidates: `[N, H, W, C]` in [0, 1].

    Returns:
        The filled image and the index of the chosen candidate.
    """
    known = _known(mask)
    y = np.asarray(image, np.float64)
    target = np.where(known[..., None], y, 0.0).astype(np.float32)
    weight = np.broadcast_to(known[..., None], y.shape).astype(np.float32)
    distances = []
    for start in range(0, len(candidates), NEAREST_CHUNK):  # float32 chunks: no N-sized float64 copy
        diff = (np.asarray(candidates[start : start + NEAREST_CHUNK], np.float32) - target) * weight
        distances.append(np.einsum("nhwc,nhwc->n", diff, diff))
    best = int(np.argmin(np.concatenate(distances)))
    out = y.copy()
    out[~known] = candidates[best][~known]
    return out, best


def opencv(image: np.ndarray, mask: np.ndarray, method: str = "telea", radius: int = 3) -> np.ndarray:
    """OpenCV's `cv2.inpaint` (Telea 2004, or Navier-Stokes: `method="ns"`) on 8-bit images."""
    try:
        import cv2
    except ImportError:
        raise MissingDependency("The telea and ns baselines need OpenCV: pip install -e .[eval]") from None
    known = _known(mask)
    y8 = np.clip(np.round(_start(image, known) * 255), 0, 255).astype(np.uint8)
    flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
    filled = cv2.inpaint(y8, (~known).astype(np.uint8), radius, flag).astype(np.float64) / 255.0
    out = np.asarray(image, np.float64).copy()
    out[~known] = filled[~known]
    return out


def biharmonic(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """scikit-image's `inpaint_biharmonic`."""
    try:
        from skimage.restoration import inpaint_biharmonic
    except ImportError:
        raise MissingDependency("The biharmonic baseline needs scikit-image: pip install -e .[eval]") from None
    known = _known(mask)
    filled = inpaint_biharmonic(_start(image, known), ~known, channel_axis=-1)
    out = np.asarray(image, np.float64).copy()
    out[~known] = filled[~known]
    return out
