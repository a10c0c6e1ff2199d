"""The inpainting encoder: its model, its training masks, its training run and where it is stored."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from tfinpaint import masks, store
from tfinpaint.encode import EncoderConfig, train_encoder
from tfinpaint.errors import ModelError, TrainingError
from tfinpaint.export import export, to_uint8
from tfinpaint.models import Encoder, build_encoder
from tfinpaint.search import SearchSettings, encoder_latents, initial_latents, inpaint


def _batch(n=3, size=32, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1, 1, (n, size, size, 3)).astype(np.float32)
    m = np.stack([masks.block(size), masks.random(size, 0.5, rng), masks.half(size)][:n])
    return images, m


def test_encoder_gives_a_latent_in_range_and_never_reads_the_hole(tmp_path):
    e = build_encoder(32, 8, 16)
    images, m = _batch()
    z = e(images, m).numpy()
    assert z.shape == (3, 16) and np.abs(z).max() <= 1.0
    scribbled = np.where(m > 0.5, images, 7.0).astype(np.float32)  # anything in the hole
    np.testing.assert_array_equal(e(scribbled, m).numpy(), z)
    other = np.stack([masks.half(32, "right")] * 3)
    assert np.abs(e(images, other).numpy() - z).max() > 1e-4  # the mask is an input
    e.save(tmp_path / "encoder.keras")
    loaded = keras.saving.load_model(tmp_path / "encoder.keras")
    assert type(loaded) is Encoder and loaded.get_config() == e.get_config()
    np.testing.assert_array_equal(loaded(images, m).numpy(), z)


def test_training_masks_are_of_every_kind():
    rng = np.random.default_rng(3)
    drawn = [masks.any_kind(64, rng) for _ in range(300)]
    assert all(m.shape == (64, 64, 1) and set(np.unique(m)) <= {0.0, 1.0} for m in drawn)
    missing = np.array([1 - m.mean() for m in drawn])
    assert (missing > 0).all() and (missing < 1).all()
    assert np.isclose(missing, 0.25).sum() >= 30  # the centre block (and blocks of its size)
    assert (missing > 0.8).sum() >= 5  # random masks of up to 95% missing
    assert sum(np.array_equal(m, masks.half(64, "top")) for m in drawn) >= 5


def test_strokes_are_thick_connected_lines():
    m = masks.strokes(64, count=1, rng=np.random.default_rng(5))
    from scipy import ndimage

    hole = m[..., 0] < 0.5
    _, pieces = ndimage.label(hole)
    assert pieces == 1 and 0.01 < hole.mean() < 0.6
    assert ndimage.binary_erosion(hole).any()  # at least 3 pixels thick somewhere


def _config(model, run_dir, **kw):
    base = dict(model=str(model), run_dir=str(run_dir), steps=6, batch_size=8, checkpoint_every=3, seed=2)
    return EncoderConfig(**{**base, **kw})


def test_encoder_run_on_an_export_is_a_whole_run_that_exports_with_its_encoder(tiny_export, tmp_path):
    run = train_encoder(_config(tiny_export, tmp_path / "enc"), verbose=0)
    card = json.loads((run / "model.json").read_text())
    assert card["format"] == store.RUN_FORMAT
    assert card["encoder"]["width"] == 8 and card["encoder"]["steps"] == 6
    model = store.load_model(run)
    images, m = _batch()
    z = model.encoder(images, m).numpy()
    shipped = store.load_model(tiny_export)
    np.testing.assert_array_equal(model.generator(z).numpy(), shipped.generator(z).numpy())  # G unchanged
    export(run, tmp_path / "served")
    served = store.load_model(tmp_path / "served")
    assert served.card.encoder == card["encoder"]
    np.testing.assert_array_equal(served.encoder(images, m).numpy(), z)
    assert shipped.encoder is None  # an export made without one has none


def test_encoder_training_resumes_where_it_stopped(tiny_run, tmp_path):
    straight = train_encoder(_config(tiny_run, tmp_path / "a"), verbose=0)
    train_encoder(_config(tiny_run, tmp_path / "b", steps=3), verbose=0)
    resumed = train_encoder(_config(tiny_run, tmp_path / "b"), verbose=0)
    a, b = store.load_model(straight).encoder, store.load_model(resumed).encoder
    for x, y in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)
    with pytest.raises(TrainingError, match=r"other settings \(batch_size: 8 -> 4\)"):
        train_encoder(_config(tiny_run, tmp_path / "b", batch_size=4), verbose=0)


def test_an_encoder_for_an_export_needs_a_run_dir(tiny_export):
    with pytest.raises(TrainingError, match=r"is not a training run: pass `run_dir`"):
        train_encoder(EncoderConfig(model=str(tiny_export)), verbose=0)


@pytest.fixture(scope="module")
def encoded(tiny_export, tmp_path_factory):
    """The tiny export with an encoder trained for a few steps: a whole run."""
    return store.load_model(train_encoder(_config(tiny_export, tmp_path_factory.mktemp("encoded") / "run"), verbose=0))


def test_the_search_starts_from_the_encoders_z_unless_asked_for_a_random_one(encoded):
    images, m = _batch()
    g, d, e = encoded.generator, encoded.discriminator, encoded.encoder
    start = inpaint(images, m, g, d, iterations=0, refine="none", blend=None, encoder=e)
    np.testing.assert_array_equal(start.z, encoder_latents(e, images, m).numpy())
    np.testing.assert_array_equal(start.z[1:2], encoder_latents(e, images[1:2], m[1:2]).numpy())  # batch-independent
    random = inpaint(images, m, g, d, iterations=0, refine="none", blend=None, encoder=e, init="random")
    np.testing.assert_array_equal(random.z, initial_latents(3, 16, 0, 1).numpy())
    # restarts after the first start from random z; the best of them wins
    two = inpaint(images, m, g, d, iterations=0, refine="none", restarts=2, encoder=e, init="encoder")
    assert (two.loss <= start.loss + 1e-4).all()
    with pytest.raises(ModelError, match=r"^`init=encoder` needs a model with an encoder"):
        inpaint(images, m, g, d, iterations=0, init="encoder")


SERVE = """
import sys, numpy as np, tensorflow as tf
inputs = np.load(sys.argv[2])
out = tf.saved_model.load(sys.argv[1]).signatures["serving_default"](
    image=tf.constant(inputs["image"]), mask=tf.constant(inputs["mask"]))
np.save(sys.argv[3], out["generated"].numpy())
"""


def test_the_served_search_starts_from_the_encoder_too(encoded, tmp_path):
    version = export(encoded, tmp_path / "served", settings=SearchSettings(iterations=0, refine="none"))
    images, m = _batch()
    image8 = to_uint8(images).numpy()
    np.savez(tmp_path / "in.npz", image=image8, mask=m)
    (tmp_path / "serve.py").write_text(SERVE)  # a process that never imports tfinpaint
    subprocess.run(
        [sys.executable, str(tmp_path / "serve.py"), str(version), str(tmp_path / "in.npz"), str(tmp_path / "out.npy")],
        check=True,
    )
    y = image8.astype(np.float32) / 127.5 - 1.0
    expected = to_uint8(encoded.generator(encoder_latents(encoded.encoder, y, m))).numpy()
    served = np.load(tmp_path / "out.npy")
    assert np.abs(served.astype(int) - expected.astype(int)).max() <= 1
