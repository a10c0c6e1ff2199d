import numpy as np
import pytest
import tensorflow as tf

from tfinpaint.augment import diff_augment, parse_policy

SEED = tf.constant([4, 2], tf.int64)


def _images(n=6, size=16):
    return tf.random.stateless_uniform([n, size, size, 3], seed=[0, 1], minval=-1.0, maxval=1.0)


def test_parse_policy():
    assert parse_policy("translation, cutout") == ("translation", "cutout")
    assert parse_policy("") == () and parse_policy(None) == ()
    with pytest.raises(ValueError, match="Unknown augmentation 'flip'"):
        parse_policy("color,flip")


def test_translation_shifts_whole_images_and_fills_with_zeros():
    x = _images()
    y = diff_augment(x, ("translation",), SEED, 6).numpy()
    x = x.numpy()
    for a, b in zip(x, y):
        # find the shift (dy, dx) with |dy|, |dx| <= 2 (1/8 of 16) that explains b
        found = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if np.array_equal(b, np.roll(np.pad(a, [(2, 2), (2, 2), (0, 0)]), (dy, dx), axis=(0, 1))[2:-2, 2:-2])
        ]
        assert len(found) == 1


def test_cutout_zeroes_one_square_of_half_the_side():
    x = _images(n=32) * 0.5 + 0.6  # never zero
    y = diff_augment(x, ("cutout",), SEED, 32).numpy()
    for b in y:
        rows, cols = np.nonzero((b == 0).all(axis=-1))
        assert rows.size > 0
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert h <= 8 and w <= 8 and rows.size == h * w  # one rectangle, clipped at the edge
    assert max(((b == 0).all(axis=-1)).sum() for b in y) == 64  # unclipped: 8 x 8


def test_colour_keeps_shape_and_is_differentiable():
    x = tf.Variable(_images())
    with tf.GradientTape() as tape:
        y = diff_augment(x, ("color", "translation", "cutout"), SEED, 6)
        loss = tf.reduce_sum(y)
    assert y.shape == x.shape
    grad = tape.gradient(loss, x)
    assert grad is not None and float(tf.reduce_sum(tf.abs(grad))) > 0


def test_a_slice_of_the_batch_is_augmented_as_in_the_whole_batch():
    x = _images(n=8)
    policy = ("color", "translation", "cutout")
    whole = diff_augment(x, policy, SEED, 8).numpy()
    part = diff_augment(x[4:], policy, SEED, 8, start=4).numpy()
    np.testing.assert_allclose(part, whole[4:], rtol=1e-6)
    other = diff_augment(x, policy, tf.constant([4, 3], tf.int64), 8).numpy()
    assert not np.allclose(other, whole)
