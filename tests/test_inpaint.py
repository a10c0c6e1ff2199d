import numpy as np
import pytest
import tensorflow as tf

from tfinpaint import evaluate, masks, photos, refine, search
from tfinpaint import settings as settings_lib
from tfinpaint.search import SearchSettings, inpaint
from tfinpaint.store import load_model


@pytest.fixture(scope="module")
def pair(tiny_run):
    model = load_model(tiny_run)
    return model.generator, model.discriminator


def psnr(a, b, where):
    mse = np.mean(((a - b)[where] / 2.0) ** 2)
    return 10 * np.log10(1.0 / mse)


def test_planted_solution_is_found(pair):
    """y = G(z*) with the centre masked: the search drives the contextual loss near zero and the
    hole's PSNR far above a mean-colour fill (measured: 60 dB against 15 dB)."""
    g, d = pair
    z_star = tf.random.stateless_uniform([1, 16], seed=[7, 7], minval=-1.0, maxval=1.0)
    y = g(z_star, training=False).numpy()
    mask = masks.block(32)
    hole = np.broadcast_to(mask < 0.5, y.shape)
    start = inpaint(y, mask, g, d, iterations=0, lam=0.0, weighted=False)
    result = inpaint(y, mask, g, d, iterations=600, lr=0.05, lam=0.0, weighted=False, restarts=4)
    known_pixels = float(mask.sum() * 3)
    assert result.loss[0] / known_pixels < 0.01  # mean |error| on known pixels: measured 0.254 -> 0.0014
    assert start.loss[0] / known_pixels > 0.1
    mean_fill = np.where(mask > 0.5, y, y[~hole].reshape(-1, 3).mean(axis=0))
    ours, baseline = psnr(result.generated, y, hole), psnr(mean_fill, y, hole)
    assert baseline < 20 and ours > 40
    assert result.history.shape == (600, 1) and result.history[-1, 0] < result.history[0, 0]


def test_known_pixels_unchanged_and_blends(pair, rng):
    g, d = pair
    y = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    m = np.stack([masks.block(32), masks.random(32, 0.8, rng)])
    for method in ("poisson", "overlay"):
        r = inpaint(y, m, g, d, iterations=5, blend=method)
        known = np.broadcast_to(m > 0.5, y.shape)
        np.testing.assert_array_equal(r.filled[known], y[known])
    assert r.filled.shape == y.shape and r.z.shape == (2, 16) and r.loss.shape == (2,)
    assert np.abs(r.z).max() <= 1.0


def _image(result, i, steps=None):
    """Everything `inpaint` returns of image i (its loss history's first `steps`: a batch
    with a refined image has longer histories, in which an image not refined keeps its loss)."""
    return [result.generated[i], result.z[i], result.filled[i], result.loss[i], result.history[:steps, i]]


def test_result_does_not_depend_on_the_batch_bit_for_bit(pair, rng):
    """An image's result is the same whatever else is in its batch and wherever it stands:
    kernels that round differently by batch size would change it (steps.per_image)."""
    g, d = pair
    y = rng.uniform(-1, 1, (8, 32, 32, 3)).astype(np.float32)
    m = np.stack([masks.random(32, 0.5, rng) if i % 2 else masks.block(32) for i in range(8)])
    settings = SearchSettings(iterations=30, seed=5, restarts=2)  # refine auto: the random masks are refined
    assert refine.refines(settings, m).numpy().tolist() == [False, True] * 4
    together = inpaint(y, m, g, d, settings)
    for i in (2, 3):
        alone = inpaint(y[i : i + 1], m[i : i + 1], g, d, settings)
        elsewhere = inpaint(y[[7, 4, 0, i]], m[[7, 4, 0, i]], g, d, settings)
        steps = len(alone.history)
        for got_alone, got_elsewhere, want in zip(
            _image(alone, 0), _image(elsewhere, 3, steps), _image(together, i, steps)
        ):
            np.testing.assert_array_equal(got_alone, want)
            np.testing.assert_array_equal(got_elsewhere, want)


def test_only_z_is_trained_and_step_is_traced_once(pair, rng):
    g, d = pair
    before = [v.numpy().copy() for v in g.weights + d.weights]
    y = rng.uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)
    inpaint(y, masks.block(32), g, d, iterations=12)
    inpaint(y * 0.5, masks.half(32), g, d, iterations=3)
    for a, b in zip(before, g.weights + d.weights):
        np.testing.assert_array_equal(a, b.numpy())
    traced = search.traces()
    inpaint(y * 0.25, masks.block(32), g, d, iterations=4)  # same shapes, same G and D: no new trace
    assert search.traces() == traced


def test_restarts_keep_the_best_latent(pair, rng):
    g, d = pair
    y = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    one = inpaint(y, masks.block(32), g, d, iterations=20, restarts=1)
    three = inpaint(y, masks.block(32), g, d, iterations=20, restarts=3)
    assert (three.loss <= one.loss + 1e-4).all()  # restart 0 is the single search itself


def test_bad_arguments(pair):
    g, d = pair
    with pytest.raises(ValueError, match=r"Expected images of shape \[N, 32, 32, 3\], got \(1, 16, 16, 3\)"):
        inpaint(np.zeros((1, 16, 16, 3)), masks.block(16), g, d)
    with pytest.raises(ValueError, match="Expected masks of shape"):
        inpaint(np.zeros((2, 32, 32, 3)), np.ones((3, 32, 32, 1)), g, d)


def test_package_level_api(pair, rng):
    import tfinpaint

    g, d = pair
    y = rng.uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
    r = tfinpaint.inpaint(y, masks.block(32), g, d, iterations=2)
    np.testing.assert_allclose(r.filled, inpaint(y, masks.block(32), g, d, iterations=2).filled)


class _PixelG:
    """A generator whose 16 latent coordinates are the 16 pixels of a 4x4 image, halved."""

    image_size, latent_dim, channels = 4, 16, 1

    def __call__(self, z, training=False):
        return tf.reshape(z, [-1, 4, 4, 1]) * 0.5


class _BlindD:
    def __call__(self, x, training=False):
        return tf.zeros([tf.shape(x)[0], 1])


def test_z_stays_clipped_to_the_box():
    """The planted z* = +-1.5 lies outside [-1, 1]^16 and every coordinate's gradient points at
    it, so an unclipped search walks out to it; the clipped one stops on the box's corner."""
    z_star = 1.5 * np.sign(np.random.default_rng(3).standard_normal((1, 16))).astype(np.float32)
    y = _PixelG()(z_star).numpy()
    r = inpaint(
        y, np.ones((4, 4, 1), np.float32), _PixelG(), _BlindD(), iterations=100, lr=0.1, lam=0.0, weighted=False
    )
    np.testing.assert_array_equal(r.z, np.sign(z_star))


def test_lift_scales_short_rows_up_to_the_floor_and_no_others():
    z = np.zeros((4, 8), np.float32)
    z[0] = [0.3, 0.4] * 4  # rms sqrt(0.125) = 0.354: scaled by 0.5 / 0.354 = 1.414
    z[1, 1] = 0.05  # rms 0.0177: scaled by 28.3, so its one component is clipped to 1
    z[2] = 0.9  # long enough already
    z[3, :2] = [0.6, 0.05]  # rms sqrt(0.3625 / 8) = 0.213: scaled by 2.35, the 0.6 clipped
    out = search.lift(tf.constant(z), 0.5).numpy()
    np.testing.assert_allclose(out[0], z[0] * 0.5 / np.sqrt(0.125), rtol=1e-6)
    np.testing.assert_array_equal(out[1], [0, 1, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(out[2], z[2])
    np.testing.assert_allclose(out[3, :2], [1.0, 0.05 * 0.5 / np.sqrt(0.3625 / 8)], rtol=1e-6)
    np.testing.assert_array_equal(search.lift(tf.constant(z), 0.0).numpy(), z)  # 0: z as it is, bit for bit


def test_min_z_rms_keeps_the_search_off_the_short_latents():
    """The planted z* = +-0.1 (rms 0.1) fits the pixels exactly and the search walks to it; with
    a floor of 0.5 it stays out at the floor (less what clipping to [-1, 1] takes) and fits worse."""
    z_star = 0.1 * np.sign(np.random.default_rng(4).standard_normal((1, 16))).astype(np.float32)
    y = _PixelG()(z_star).numpy()
    args = (y, np.ones((4, 4, 1), np.float32), _PixelG(), _BlindD())
    free = inpaint(*args, iterations=400, lr=0.01, lam=0.0, weighted=False)
    floored = inpaint(*args, iterations=400, lr=0.01, lam=0.0, weighted=False, min_z_rms=0.5)
    np.testing.assert_allclose(free.z, z_star, atol=0.01)
    assert 0.49 < np.sqrt(np.mean(floored.z**2)) <= 0.5
    assert floored.loss[0] > free.loss[0] + 1.0
    with pytest.raises(ValueError, match=r"Expected a min_z_rms >= 0 and < 1 \(z lies in \[-1, 1\]\), got 1.5"):
        SearchSettings(min_z_rms=1.5)


def test_perceptual_term_moves_g_towards_what_d_calls_real(pair):
    """With no known pixel the contextual loss is 0, so only eq. 3 drives the search: it must
    raise D's logit of G(z) (a flipped sign would lower it)."""
    g, d = pair
    y = np.zeros((2, 32, 32, 3), np.float32)
    hole = np.zeros((32, 32, 1), np.float32)
    z0 = search.initial_latents(2, g.latent_dim, 0, 1)
    before = d(g(z0, training=False), training=False).numpy().ravel()
    r = inpaint(y, hole, g, d, iterations=40, lam=1.0, lr=0.05, blend=None)
    after = d(r.generated, training=False).numpy().ravel()
    assert (after > before + 0.05).all(), (before, after)
    assert r.filled is None


@pytest.fixture(scope="module")
def face_batch(faces_dir):
    from tfinpaint import data

    files = [faces_dir / f"00000{i}.jpg" for i in range(1, 4)]  # held out by the tiny run
    return np.stack([data.preprocess_numpy(photos.load_image_file(f), "celeba", 32) for f in files])


@pytest.mark.parametrize(
    "refine, lr, ratio",
    [("generator", 1e-3, 0.6), ("features", 0.03, 0.85)],  # measured: 0.30-0.44 and 0.58-0.71
)
def test_refinement_fits_the_known_pixels_closer_than_z_alone(pair, face_batch, refine, lr, ratio):
    """The tiny G cannot draw these faces: refining beyond z must cut the loss of eq. 4 well
    below the z search's, keep the known pixels and the shipped weights, and record its steps
    after the z search's."""
    g, d = pair
    before = [v.numpy().copy() for v in g.weights + d.weights]
    m = np.stack([masks.random(32, 0.8, np.random.default_rng(i)) for i in range(3)])
    z_only = inpaint(face_batch, m, g, d, iterations=30, refine="none")
    refined = inpaint(face_batch, m, g, d, iterations=30, refine=refine, refine_steps=40, refine_lr=lr)
    assert (refined.loss < ratio * z_only.loss).all(), (z_only.loss, refined.loss)
    np.testing.assert_array_equal(refined.z, z_only.z)  # the refinement starts from the chosen z
    np.testing.assert_array_equal(refined.history[:30], z_only.history)
    assert refined.history.shape == (70, 3) and (refined.history[-1] < refined.history[30]).all()
    known = np.broadcast_to(m > 0.5, face_batch.shape)
    np.testing.assert_array_equal(refined.filled[known], face_batch[known])
    for a, b in zip(before, g.weights + d.weights):
        np.testing.assert_array_equal(a, b.numpy())


@pytest.mark.parametrize("refine", ["generator", "features"])
def test_refined_images_do_not_share_a_refinement(pair, face_batch, refine):
    """Each image is refined on its own (G's weights: a copy per image): alone or in a batch,
    and first or last, it gets the same result."""
    g, d = pair
    m = np.stack([masks.block(32), masks.random(32, 0.8, np.random.default_rng(0)), masks.half(32)])
    settings = SearchSettings(iterations=10, refine=refine, refine_steps=15)
    together = inpaint(face_batch, m, g, d, settings)
    alone = inpaint(face_batch[2:], m[2:], g, d, settings)
    np.testing.assert_array_equal(alone.generated[0], together.generated[2])
    np.testing.assert_array_equal(alone.loss[0], together.loss[2])


def test_refinement_settings_are_checked():
    with pytest.raises(ValueError, match="Unknown refine 'weights'; expected one of"):
        SearchSettings(refine="weights")
    with pytest.raises(ValueError, match="Expected refine_steps >= 0 and refine_lr > 0, got -1 and None"):
        SearchSettings(refine="generator", refine_steps=-1)
    assert SearchSettings(refine="features", refine_steps=50).steps == 350
    assert SearchSettings(refine="none", refine_steps=50).steps == 300
    assert SearchSettings(refine="generator").refine_rate == settings_lib.REFINE_LR["generator"]


def test_auto_refines_scattered_holes_only(pair, face_batch):
    """`auto` (the default) refines the features where most of the hole lies near known pixels
    (random 80%, pattern blobs) and leaves large holes (the centre block, a half) to z alone."""
    kinds = evaluate.make_masks("random", 1, 64, 0), evaluate.make_masks("pattern", 8, 64, 0)
    assert refine.scattered(np.concatenate(kinds)).numpy().all()
    large = np.concatenate([evaluate.make_masks(k, 1, 64, 0) for k in ("block", "half", "none")])
    assert not refine.scattered(large).numpy().any()
    assert SearchSettings().refine == "auto"
    g, d = pair
    m = np.stack([masks.random(32, 0.8, np.random.default_rng(0)), masks.block(32), masks.half(32)])
    settings = SearchSettings(iterations=10, refine_steps=15)
    auto = inpaint(face_batch, m, g, d, settings)
    features = inpaint(face_batch[:1], m[:1], g, d, settings, refine="features")
    z_only = inpaint(face_batch[1:], m[1:], g, d, settings, refine="none")
    np.testing.assert_allclose(auto.generated[:1], features.generated, atol=1e-5)
    np.testing.assert_allclose(auto.generated[1:], z_only.generated, atol=1e-5)
    np.testing.assert_allclose(auto.loss, np.concatenate([features.loss, z_only.loss]), rtol=1e-5)
    assert auto.history.shape == (25, 3) and (auto.history[10:, 1:] == auto.loss[1:]).all()  # not refined
