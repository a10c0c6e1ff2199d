import numpy as np
import pytest

from tfinpaint import masks, metrics


def test_psnr_by_hand():
    a = np.zeros((4, 4, 3))
    b = np.full((4, 4, 3), 0.1)  # MSE 0.01 -> 20 dB
    assert metrics.psnr(a, b) == pytest.approx(20.0)
    b[0, 0, 0] = 1.0  # one of 48 values off by 1: MSE = (47 * 0.01 + 1) / 48
    assert metrics.psnr(a, b) == pytest.approx(10 * np.log10(48 / 1.47))
    assert metrics.psnr(a, a) == float("inf")


def test_ssim_by_hand(rng):
    x = rng.uniform(0, 1, (32, 32, 3))
    assert metrics.ssim(x, x) == pytest.approx(1.0)
    # constant images: only the luminance term, (2 mu_a mu_b + c1) / (mu_a^2 + mu_b^2 + c1)
    a, b = np.full((16, 16, 1), 0.2), np.full((16, 16, 1), 0.6)
    c1 = 0.01**2
    assert metrics.ssim(a, b) == pytest.approx((2 * 0.2 * 0.6 + c1) / (0.2**2 + 0.6**2 + c1))
    assert metrics.ssim(x, 1 - x) < 0


def test_mean_colour_fill(rng):
    img = rng.uniform(0, 1, (8, 8, 3))
    m = masks.block(8)
    out = metrics.mean_colour_fill(img, m)
    known = m[..., 0] > 0.5
    np.testing.assert_array_equal(out[known], img[known])
    np.testing.assert_allclose(out[~known], np.broadcast_to(img[known].mean(axis=0), out[~known].shape))


def test_relative_sharpness_is_a_ratio_of_medians(rng):
    refs = rng.uniform(0, 1, (5, 16, 16, 3))
    assert metrics.relative_sharpness(refs, refs) == pytest.approx(1.0)
    # the Laplacian is linear: images at half the contrast have a quarter of the squared Laplacian
    assert metrics.relative_sharpness(refs * 0.5, refs) == pytest.approx(0.25)
    # medians, not means: one flat image among five counts as one value of five
    flat = refs.copy()
    flat[0] = 0.5
    whole = np.ones((16, 16), bool)
    ours, theirs = ([metrics.sharpness(x, whole) for x in xs] for xs in (flat, refs))
    assert metrics.relative_sharpness(flat, refs) == pytest.approx(np.median(ours) / np.median(theirs))
    assert np.median(ours) != pytest.approx(np.mean(ours))
    assert metrics.relative_sharpness(np.full((3, 16, 16, 3), 0.5), refs) == 0.0
