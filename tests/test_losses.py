"""tfinpaint.losses: each loss against its formula, computed by hand."""

import numpy as np
import pytest
import tensorflow as tf

from tfinpaint.losses import contextual_loss, discriminator_loss, generator_loss, importance_weights, perceptual_loss


def test_contextual_loss_by_hand():
    g = np.zeros((1, 2, 2, 1), np.float32)
    y = np.array([[[[0.5], [-1.0]], [[np.nan], [0.25]]]], np.float32)  # NaN sits in the hole
    m = np.array([[[[1.0], [1.0]], [[0.0], [1.0]]]], np.float32)
    assert float(contextual_loss(g, y, m)[0]) == pytest.approx(0.5 + 1.0 + 0.25)
    w = np.array([[[[2.0], [0.0]], [[5.0], [4.0]]]], np.float32)
    assert float(contextual_loss(g, y, m, w)[0]) == pytest.approx(2 * 0.5 + 0 + 4 * 0.25)


def test_perceptual_loss_is_log_one_minus_d_and_stable():
    logits = tf.constant([[0.0], [2.0], [-3.0], [1000.0], [-1000.0]])
    out = perceptual_loss(logits).numpy()
    np.testing.assert_allclose(out[:3], np.log(1 - 1 / (1 + np.exp(-np.array([0.0, 2.0, -3.0])))), rtol=1e-6)
    assert out[3] == pytest.approx(-1000.0) and out[4] == pytest.approx(0.0, abs=1e-30)
    assert np.isfinite(out).all()


def test_importance_weights_window_7():
    m = np.ones((1, 15, 15, 1), np.float32)
    m[0, 7, 7] = 0.0  # one missing pixel in the middle
    w = importance_weights(m).numpy()[0, ..., 0]
    assert w[7, 7] == 0.0  # the hole itself has no weight
    assert w[7, 8] == pytest.approx(1 / 49) and w[10, 10] == pytest.approx(1 / 49)
    assert w[11, 11] == 0.0 and w[0, 0] == 0.0  # 4 pixels away: outside the 7x7 window
    corner = np.ones((1, 9, 9, 1), np.float32)
    corner[0, 0, 0] = 0.0
    assert importance_weights(corner).numpy()[0, 1, 1, 0] == pytest.approx(1 / 25)  # window clipped to 5x5


def test_gan_losses_by_hand():
    real, fake = tf.constant([[2.0], [0.5]]), tf.constant([[-3.0], [0.25]])
    np.testing.assert_allclose(discriminator_loss(real, fake, "hinge"), [0.0 + 0.0, 0.5 + 1.25])
    np.testing.assert_allclose(generator_loss(fake, "hinge"), [3.0, -0.25])
    softplus = lambda x: np.log1p(np.exp(x))  # noqa: E731
    np.testing.assert_allclose(
        discriminator_loss(real, fake), softplus(-np.array([2.0, 0.5])) + softplus(np.array([-3.0, 0.25])), rtol=1e-6
    )
    np.testing.assert_allclose(generator_loss(fake), softplus(-np.array([-3.0, 0.25])), rtol=1e-6)
