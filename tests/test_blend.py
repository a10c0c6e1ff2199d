import numpy as np
import pytest

from tfinpaint import blend, masks


def _edges_least_squares(source, target, mask):
    """Eq. 6 written directly as least squares over 4-neighbour edges touching the hole:
    one row per unordered pair {i, j} with i in the hole."""
    h, w, _ = source.shape
    known = mask[..., 0] > 0.5
    hole = np.flatnonzero(~known.ravel())
    col = {p: k for k, p in enumerate(hole)}
    rows, rhs = [], []
    for r in range(h):
        for c in range(w):
            for dr, dc in ((1, 0), (0, 1)):
                r2, c2 = r + dr, c + dc
                if r2 >= h or c2 >= w:
                    continue
                p, q = r * w + c, r2 * w + c2
                if known.ravel()[p] and known.ravel()[q]:
                    continue
                row = np.zeros(len(hole))
                b = source.reshape(-1, 3)[p] - source.reshape(-1, 3)[q]
                if p in col:
                    row[col[p]] += 1
                else:
                    b = b - target.reshape(-1, 3)[p]
                if q in col:
                    row[col[q]] -= 1
                else:
                    b = b + target.reshape(-1, 3)[q]
                rows.append(row)
                rhs.append(b)
    return np.array(rows), np.array(rhs), hole


def test_poisson_satisfies_normal_equations_and_matches_dense_solve(rng):
    source = rng.uniform(-1, 1, (9, 11, 3))
    target = rng.uniform(-1, 1, (9, 11, 3))
    mask = masks.random(9, 0.5, rng)[:, :9]
    mask = np.concatenate([mask, masks.random(9, 0.5, rng)[:, :2]], axis=1)  # 9x11, holes on the border too
    out = blend.poisson(source, target, mask)
    a, b, hole = _edges_least_squares(source, target, mask)
    x = out.reshape(-1, 3)[hole]
    residual = a.T @ (a @ x - b)
    assert np.linalg.norm(residual) / np.linalg.norm(a.T @ b) < 1e-8
    dense = np.linalg.solve(a.T @ a, a.T @ b)
    np.testing.assert_allclose(x, dense, atol=1e-10)


def test_known_pixels_unchanged_exactly(rng):
    source = rng.uniform(-1, 1, (16, 16, 3)).astype(np.float32)
    target = rng.uniform(-1, 1, (16, 16, 3)).astype(np.float32)
    for mask in (masks.block(16), masks.random(16, 0.8, rng), masks.half(16, "top"), masks.pattern(16, rng=rng)):
        known = mask[..., 0] > 0.5
        for out in (blend.poisson(source, target, mask), blend.overlay(source, target, mask)):
            assert out.dtype == np.float32
            np.testing.assert_array_equal(out[known], target[known])


def test_hole_of_target_is_never_read(rng):
    source = rng.uniform(-1, 1, (16, 16, 3))
    target = rng.uniform(-1, 1, (16, 16, 3))
    mask = masks.block(16, 6)
    poisoned = target.copy()
    poisoned[mask[..., 0] < 0.5] = np.nan
    for method in ("poisson", "overlay"):
        a = blend.blend_batch(source[None], target[None], mask[None], method)
        b = blend.blend_batch(source[None], poisoned[None], mask[None], method)
        np.testing.assert_array_equal(a, b)


def test_constant_source_in_constant_image_returns_the_image():
    target = np.full((12, 12, 3), 0.25)
    source = np.full((12, 12, 3), -0.7)
    np.testing.assert_allclose(blend.poisson(source, target, masks.block(12)), target, atol=1e-12)


def test_shifted_source_is_corrected_by_the_boundary(rng):
    # the hole's content equals the image up to a constant offset: Poisson removes the offset
    target = rng.uniform(-1, 1, (16, 16, 3))
    out = blend.poisson(target + 0.3, target, masks.block(16))
    np.testing.assert_allclose(out, target, atol=1e-10)


def test_edge_cases(rng):
    source = rng.uniform(-1, 1, (8, 8, 3))
    target = rng.uniform(-1, 1, (8, 8, 3))
    np.testing.assert_array_equal(blend.poisson(source, target, np.ones((8, 8, 1))), target)  # no hole
    np.testing.assert_array_equal(blend.poisson(source, target, np.zeros((8, 8, 1))), source)  # no boundary
    corner = np.ones((8, 8, 1))
    corner[:3, :3] = 0  # hole touching two borders
    assert np.isfinite(blend.poisson(source, target, corner)).all()


def test_thousands_of_one_pixel_holes(rng):
    source = rng.uniform(-1, 1, (128, 128, 3))
    target = rng.uniform(-1, 1, (128, 128, 3))
    mask = masks.random(128, 0.8, rng)
    solver = blend.PoissonSolver(mask)
    assert solver.hole.size > 12_000
    out = solver.blend(source, target)
    x = out.reshape(-1, 3)[solver.hole]
    residual = solver.matrix @ x - solver.rhs(source, target)
    assert np.linalg.norm(residual) / np.linalg.norm(solver.rhs(source, target)) < 1e-10


def test_batch_shares_factorisation_and_checks_shapes(rng):
    src = rng.uniform(-1, 1, (3, 8, 8, 3))
    tgt = rng.uniform(-1, 1, (3, 8, 8, 3))
    m = np.stack([masks.block(8), masks.block(8), masks.half(8)])
    out = blend.blend_batch(src, tgt, m)
    for i in range(3):
        np.testing.assert_allclose(out[i], blend.poisson(src[i], tgt[i], m[i]))
    with pytest.raises(ValueError, match="Expected a mask of shape"):
        blend.poisson(src[0], tgt[0], np.ones((4, 4, 1)))
    with pytest.raises(ValueError, match="Unknown blend"):
        blend.blend_batch(src, tgt, m, "alpha")


def test_large_holes_solved_iteratively_agree_with_the_factorisation(rng):
    """Past `DIRECT_LIMIT` hole pixels the system is solved by preconditioned conjugate
    gradients; on the same system both must agree to 0.01 grey levels (results are rounded to 1)."""
    mask = np.ones((90, 70, 1))
    mask[10:80, 5:60] = 0
    mask[0:4, 0:3] = 0  # a second hole, in the corner
    source = rng.uniform(0, 255, (90, 70, 3))
    target = rng.uniform(0, 255, (90, 70, 3))
    guided = np.zeros((90, 70), bool)
    guided[:, 20:] = True
    direct = blend.PoissonSolver(mask)
    iterative = blend.PoissonSolver(mask, direct_limit=100)
    assert (iterative.method, direct.method) == ("iterative", "direct")
    for g in (None, guided):
        np.testing.assert_allclose(iterative.blend(source, target, g), direct.blend(source, target, g), atol=0.01)


def test_unguided_edges_take_the_known_pixels_value():
    """Where the source is not defined (`guided` False), the hole continues the known pixels
    instead of keeping the source's step to them."""
    mask = np.ones((8, 12, 1))
    mask[2:6, 0:6] = 0
    source = np.full((8, 12, 3), 100.0)
    target = np.full((8, 12, 3), 10.0)
    np.testing.assert_allclose(blend.poisson(source, target, mask), target)  # a flat source: the level is y's
    source[:, :3] = 200.0  # the source steps by 100 inside the hole ...
    guided = np.zeros((8, 12), bool)
    guided[:, 3:] = True  # ... where it is not defined: no guidance across that step
    out = blend.poisson(source, target, mask, guided)
    np.testing.assert_allclose(out, target, atol=1e-9)
    assert np.abs(blend.poisson(source, target, mask) - target).max() > 30  # guided everywhere: the step stays
