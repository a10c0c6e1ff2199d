"""The losses, each per example and by hand-checkable formula (`tests/test_losses.py`).

The latent search's (Yeh et al.): the contextual loss of eq. 2 with the CVPR version's
importance weights, and the perceptual loss of eq. 3. The GAN's: the DCGAN's cross-entropy
(with G's non-saturating loss) and the hinge loss.
"""

from __future__ import annotations

import tensorflow as tf

WINDOW = 7  # the CVPR version's importance-weighting window


def importance_weights(masks: tf.Tensor, window: int = WINDOW) -> tf.Tensor:
    """CVPR 2017 weights `[N, H, W, 1]`: at known pixels, the share of missing pixels in
    the `window` x `window` neighbourhood (inside the image); 0 in the hole.
    """
    masks = tf.convert_to_tensor(masks, tf.float32)
    share_missing = tf.nn.avg_pool2d(1.0 - masks, window, strides=1, padding="SAME")
    return masks * share_missing


def contextual_loss(
    generated: tf.Tensor, images: tf.Tensor, masks: tf.Tensor, weights: tf.Tensor | None = None
) -> tf.Tensor:
    """Eq. 2: ||W * M * (G(z) - y)||_1 per image.

    Args:
        generated: G(z) `[N, H, W, C]` in [-1, 1].
        images: y `[N, H, W, C]` in [-1, 1]; its hole is never read (multiplied by 0
            and replaced, so NaNs there do no harm).
        masks: `[N, H, W, 1]`, 1 = known.
        weights: optional `[N, H, W, 1]` importance weights (default: M itself).

    Returns:
        `[N]` float32, >= 0.
    """
    known = masks > 0.5
    images = tf.where(known, images, tf.zeros_like(images))
    w = masks if weights is None else weights
    return tf.reduce_sum(tf.abs(w * (generated - images)), axis=[1, 2, 3])


def perceptual_loss(logits: tf.Tensor) -> tf.Tensor:
    """Eq. 3: log(1 - D(G(z))) per image, as -softplus(logit) so it never overflows.

    Args:
        logits: D's logits `[N, 1]` or `[N]`.

    Returns:
        `[N]` float32, <= 0.
    """
    return -tf.nn.softplus(tf.reshape(logits, [-1]))


def discriminator_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor, loss: str = "bce") -> tf.Tensor:
    """Per-example D loss `[batch]` from logits `[batch, 1]`: -log D(x) - log(1 - D(G(z)))
    (`bce`), or relu(1 - D(x)) + relu(1 + D(G(z))) on the logits (`hinge`)."""
    if loss == "hinge":
        return tf.reshape(tf.nn.relu(1.0 - real_logits) + tf.nn.relu(1.0 + fake_logits), [-1])
    real = tf.nn.sigmoid_cross_entropy_with_logits(tf.ones_like(real_logits), real_logits)
    fake = tf.nn.sigmoid_cross_entropy_with_logits(tf.zeros_like(fake_logits), fake_logits)
    return tf.reshape(real + fake, [-1])


def generator_loss(fake_logits: tf.Tensor, loss: str = "bce") -> tf.Tensor:
    """Per-example G loss `[batch]` from logits `[batch, 1]`: the non-saturating -log D(G(z))
    (`bce`), or -D(G(z)) on the logits (`hinge`)."""
    if loss == "hinge":
        return tf.reshape(-fake_logits, [-1])
    return tf.reshape(tf.nn.sigmoid_cross_entropy_with_logits(tf.ones_like(fake_logits), fake_logits), [-1])
