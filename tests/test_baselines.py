import numpy as np
import pytest

from tfinpaint import baselines, masks


def test_tv_fills_a_hole_in_a_constant_image_exactly():
    img = np.full((24, 24, 3), 0.3)
    poisoned = img.copy()
    m = masks.block(24)
    poisoned[m[..., 0] < 0.5] = np.nan  # the hole is never read
    out, iterations = baselines.total_variation(poisoned, m)
    np.testing.assert_allclose(out, img, atol=1e-9)
    assert iterations < 50


def test_tv_joins_two_flat_halves_with_a_straight_edge():
    img = np.zeros((20, 20, 1))
    img[:, 10:] = 1.0
    m = masks.block(20, 8)
    out, _ = baselines.total_variation(img, m, tol=1e-7)
    np.testing.assert_allclose(out, img, atol=1e-2)  # the edge is the TV-minimal continuation


def test_low_rank_recovers_a_rank_one_image_from_half_its_pixels():
    rng = np.random.default_rng(0)
    u, v = rng.uniform(0.2, 1.0, 32), rng.uniform(0.2, 1.0, 32)
    img = np.outer(u, v)[..., None]
    m = masks.random(32, 0.5, rng)
    out, iterations = baselines.low_rank(img, m, tol=1e-6)
    hole = m[..., 0] < 0.5
    assert np.abs(out - img)[hole].max() < 1e-3
    assert iterations < 500


def test_nearest_neighbour_picks_the_closest_on_known_pixels():
    rng = np.random.default_rng(1)
    candidates = rng.uniform(0, 1, (5, 8, 8, 3))
    img = candidates[3].copy()
    m = masks.block(8)
    img[m[..., 0] < 0.5] = np.nan
    out, best = baselines.nearest_neighbour(img, m, candidates)
    assert best == 3
    np.testing.assert_array_equal(out, candidates[3])


@pytest.mark.parametrize("fn", [baselines.total_variation, baselines.low_rank])
def test_known_pixels_are_kept(fn):
    rng = np.random.default_rng(2)
    img = rng.uniform(0, 1, (16, 16, 3))
    m = masks.random(16, 0.6, rng)
    out, _ = fn(img, m)
    known = m[..., 0] > 0.5
    np.testing.assert_array_equal(out[known], img[known])
