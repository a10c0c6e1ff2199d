"""What every step of the search and of its refinement is built of: a model call on each
image alone, the loss of eq. 4 on an image drawn, and Adam written out as Keras computes it."""

from __future__ import annotations

import tensorflow as tf

from tfinpaint.losses import contextual_loss, perceptual_loss

ADAM_BETA2 = 0.999
ADAM_EPSILON = 1e-7  # Keras's defaults


def per_image(fn, *batches, outputs: int = 1):
    """`fn` on each row of `batches` alone, as a batch of one; its results stacked `[N, ...]`.

    Why: CPU kernels (oneDNN's and Eigen's alike) and GPU kernels choose their blocking by
    the shapes they see, so G(z) of a batch of 4 rounds an image's numbers differently
    from G(z) of a batch of 1 (by about 1e-7), and even a row's place in a batch of 8 can
    change them. Adam's first steps move each component of z by about the learning rate
    in the direction of its gradient's sign, so those roundings grow into fills that
    differ by several grey levels. A batch of one is the one shape every batch shares.
    `tf.map_fn` keeps it one loop in the graph, traced once for any batch size.

    Args:
        fn: takes one `[1, ...]` tensor per batch and returns `outputs` float32 tensors
            (one, or a tuple), each `[1, ...]`.
        batches: tensors `[N, ...]` with the same N.
    """
    signature = tf.float32 if outputs == 1 else (tf.float32,) * outputs
    return tf.map_fn(
        lambda rows: tf.nest.map_structure(lambda x: x[0], fn(*(r[None] for r in rows))),
        tuple(tf.convert_to_tensor(b) for b in batches),
        fn_output_signature=signature,
    )


# --- the loss of eq. 4 on an image drawn ------------------------------------------


def fit_loss(generated, discriminator, images, masks, weights, lam):
    """Eq. 4 of an image already drawn, contextual + lam * perceptual, per image `[N]`.

    D runs on the whole batch: the steps call it through `per_image`, and so does
    `fit_loss_each`.
    """
    loss = contextual_loss(generated, images, masks, weights)
    return loss + lam * perceptual_loss(discriminator(generated, training=False))


def fit_loss_each(generated, discriminator, images, masks, weights, lam):
    """`fit_loss` with D on each image alone (`per_image`), `[N]`."""
    return per_image(lambda x, y, m, w: fit_loss(x, discriminator, y, m, w, lam), generated, images, masks, weights)


def search_loss(generator, discriminator, z, images, masks, weights, lam):
    """Eq. 4, contextual + lam * perceptual, per image `[N]`, and G(z)."""
    generated = generator(z, training=False)
    return fit_loss(generated, discriminator, images, masks, weights, lam), generated


def adam_update(z, grad, m, v, t, lr, beta1):
    """One step of Adam as Keras computes it (beta_2 0.999, epsilon 1e-7); `t` steps done so far.

    `beta1` is float64, as Keras holds it: Keras forms 1 - beta_1 in double precision before
    rounding it to float32, and a float32 beta_1 would round differently (0.10000002, not 0.1).
    """
    step = tf.cast(t + 1, tf.float32)
    beta1 = tf.cast(beta1, tf.float64)
    m = m + (grad - m) * tf.cast(1.0 - beta1, tf.float32)
    v = v + (tf.square(grad) - v) * (1.0 - ADAM_BETA2)
    alpha = lr * tf.sqrt(1.0 - ADAM_BETA2**step) / (1.0 - tf.cast(beta1, tf.float32) ** step)
    return z - (m * alpha) / (tf.sqrt(v) + ADAM_EPSILON), m, v
