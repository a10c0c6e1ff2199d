"""The latent search of eqs. 2-4: find z whose G(z) matches the known pixels and fools D.

z starts from U[-1, 1]; Adam updates z alone through a `GradientTape`, clipping z to
[-1, 1] after every step. G and D run in inference mode, and the batch loss is the sum
of per-image losses, so an image's result does not depend on the other images of its
batch.

The search is written once: `search_start` (tiled inputs and initial latents),
`search_step` (one Adam step on z, state `(z, m, v, t)` as tensors) and `search_finish`
(the final loss and the best restart). `inpaint` runs the step in a Python loop (for
progress reports); the SavedModel runs the same step in a `tf.while_loop`. Adam is
written out as Keras's Adam computes it, so both follow it step for step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from tfinpaint import blend as blend_lib
from tfinpaint.constants import BLENDS

WINDOW = 7  # the CVPR version's importance-weighting window
ADAM_BETA2 = 0.999
ADAM_EPSILON = 1e-7  # Keras's defaults


@dataclasses.dataclass(frozen=True)
class SearchSettings:
    """Latent-search settings; the defaults were chosen on held-out faces (README).

    Attributes:
        iterations: Adam steps on z.
        lam: weight of the perceptual loss (the paper's lambda).
        lr: Adam learning rate on z.
        beta1: Adam beta_1 on z.
        restarts: latents searched per image; the lowest final loss wins.
        weighted: weight the contextual loss by the share of missing pixels in a
            7x7 window around each known pixel (CVPR 2017 version).
        seed: seeds the initial latents.
    """

    iterations: int = 300
    lam: float = 0.003
    lr: float = 0.03
    beta1: float = 0.9
    restarts: int = 1
    weighted: bool = True
    seed: int = 0

    def __post_init__(self):
        if self.iterations < 0 or self.restarts < 1:
            raise ValueError(f"Expected iterations >= 0 and restarts >= 1, got {self.iterations} and {self.restarts}")


@dataclasses.dataclass
class InpaintResult:
    """What `inpaint` returns; arrays are numpy.

    Attributes:
        filled: `[N, H, W, C]` in [-1, 1], G(z) blended into the known pixels (None
            when `inpaint` was asked not to blend).
        generated: G(z) `[N, H, W, C]` in [-1, 1].
        z: the chosen latents `[N, latent_dim]`.
        loss: final total loss per image `[N]`.
        history: total loss per iteration of the chosen latent `[iterations, N]`.
    """

    filled: np.ndarray | None
    generated: np.ndarray
    z: np.ndarray
    loss: np.ndarray
    history: np.ndarray


# --- losses ------------------------------------------------------------------------


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


def search_loss(generator, discriminator, z, images, masks, weights, lam):
    """Eq. 4, contextual + lam * perceptual, per image `[N]`, and G(z)."""
    generated = generator(z, training=False)
    loss = contextual_loss(generated, images, masks, weights)
    return loss + lam * perceptual_loss(discriminator(generated, training=False)), generated


# --- the search, in three parts ------------------------------------------------------


def initial_latents(n, latent_dim: int, seed, restarts) -> tf.Tensor:
    """z from U[-1, 1] `[restarts * n, latent_dim]`: row r * n + i is restart r of image i.

    Every image gets the same z for a given (seed, restart), so no result depends on the
    image's place in the batch. `n`, `seed` and `restarts` may be tensors.
    """
    seed = tf.cast(seed, tf.int64)
    rows = tf.map_fn(
        lambda r: tf.random.stateless_uniform([latent_dim], seed=tf.stack([seed, r]), minval=-1.0, maxval=1.0),
        tf.range(tf.cast(restarts, tf.int64)),
        fn_output_signature=tf.float32,
    )
    return tf.repeat(rows, n, axis=0)


def search_start(images, masks, latent_dim: int, weighted: bool, restarts, seed):
    """Inputs tiled once per restart, their weights, and the initial state `(z, m, v, t)`.

    Args:
        images: y `[N, H, W, C]` in [-1, 1]; the hole is never read.
        masks: `[N, H, W, 1]`, 1 = known.

    Returns:
        `(y, m, w)` each `[restarts * N, ...]`, and the state.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    masks = tf.convert_to_tensor(masks, tf.float32)
    tiles = tf.stack([restarts, 1, 1, 1])
    y = tf.tile(tf.where(masks > 0.5, images, tf.zeros_like(images)), tiles)
    m = tf.tile(masks, tiles)
    w = importance_weights(m) if weighted else m
    z = initial_latents(tf.shape(images)[0], latent_dim, seed, restarts)
    zeros = tf.zeros_like(z)
    return (y, m, w), (z, zeros, zeros, tf.constant(0))


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


def search_step(generator, discriminator, state, inputs, lam, lr, beta1):
    """One Adam step on z, then z clipped to [-1, 1].

    Args:
        state: `(z, m, v, t)`: latents, Adam's moments, steps done.
        inputs: `(y, m, w)` from `search_start`.
        lam, lr, beta1: the perceptual weight, Adam's learning rate (float32) and beta_1 (float64).

    Returns:
        The next state and the loss per row `[rows]` before the step.
    """
    z, m, v, t = state
    images, masks, weights = inputs
    with tf.GradientTape() as tape:
        tape.watch(z)
        loss, _ = search_loss(generator, discriminator, z, images, masks, weights, lam)
        total = tf.reduce_sum(loss)  # a sum: no image's gradient depends on another
    grad = tape.gradient(total, z)
    z, m, v = adam_update(z, grad, m, v, t, lr, beta1)
    return (tf.clip_by_value(z, -1.0, 1.0), m, v, t + 1), loss


def search_finish(generator, discriminator, z, inputs, lam, n, restarts):
    """G(z), the final loss and the chosen row of each image (its lowest-loss restart).

    Returns:
        `generated [n, H, W, C]`, `loss [n]`, `rows [n]` (indices into the restarts' rows).
    """
    images, masks, weights = inputs
    loss, generated = search_loss(generator, discriminator, z, images, masks, weights, lam)
    best = tf.argmin(tf.reshape(loss, tf.stack([restarts, n])), axis=0, output_type=tf.int32)
    rows = best * n + tf.range(n)
    return tf.gather(generated, rows), tf.gather(loss, rows), rows


# Traced per (G, D) pair and input shapes; tf.function keys G and D by weak reference.
_step = tf.function(search_step)
_finish = tf.function(search_finish)


# --- the Python API ------------------------------------------------------------------


def _as_batch(masks, n: int, h: int, w: int) -> np.ndarray:
    masks = np.asarray(masks, np.float32)
    if masks.ndim == 3:
        masks = np.broadcast_to(masks[None], (n,) + masks.shape)
    if masks.shape != (n, h, w, 1):
        raise ValueError(f"Expected masks of shape {(n, h, w, 1)} or {(h, w, 1)}, got {masks.shape}")
    return masks


def inpaint(
    images,
    masks,
    generator,
    discriminator,
    settings: SearchSettings | None = None,
    blend: str | None = "poisson",
    progress: Callable[[int, float], None] | None = None,
    **overrides,
) -> InpaintResult:
    """Fill the holes of `images` with G(z) for the z found by the latent search.

    Args:
        images: y, `[N, H, W, C]` float in [-1, 1] at the model's size; holes are never read.
        masks: `[N, H, W, 1]` (one per image) or `[H, W, 1]` (for all), 1 = known.
        generator, discriminator: a trained pair (`tfinpaint.load_model(...)`).
        settings: search settings; keyword `overrides` replace single fields
            (e.g. `iterations=100`).
        blend: `poisson` (eq. 6), `overlay` (eq. 5), or None to skip blending
            (`filled` is then None; `tfinpaint.fill` blends into the full photo itself).
        progress: called as `progress(iteration, mean_loss)` every few iterations.

    Returns:
        An `InpaintResult`.
    """
    s = dataclasses.replace(settings or SearchSettings(), **overrides)
    if blend is not None and blend not in BLENDS:
        raise ValueError(f"Unknown blend {blend!r}; expected one of {BLENDS} or None")
    images = np.asarray(images, np.float32)
    n, h, w, c = images.shape
    size = generator.image_size
    if (h, w, c) != (size, size, generator.channels):
        raise ValueError(f"Expected images of shape [N, {size}, {size}, {generator.channels}], got {images.shape}")
    masks = _as_batch(masks, n, h, w)
    inputs, state = search_start(images, masks, generator.latent_dim, s.weighted, s.restarts, s.seed)
    lam, lr, beta1 = tf.constant(s.lam, tf.float32), tf.constant(s.lr, tf.float32), tf.constant(s.beta1, tf.float64)
    history = []
    every = max(1, s.iterations // 100)
    for it in range(s.iterations):
        state, loss = _step(generator, discriminator, state, inputs, lam, lr, beta1)
        history.append(loss)
        if progress and ((it + 1) % every == 0 or it + 1 == s.iterations):
            progress(it + 1, float(tf.reduce_mean(loss)))
    generated, loss, rows = _finish(generator, discriminator, state[0], inputs, lam, n, s.restarts)
    rows = rows.numpy()
    hist = tf.stack(history).numpy()[:, rows] if history else np.zeros((0, n), np.float32)
    generated = generated.numpy()
    filled = None if blend is None else blend_lib.blend_batch(generated, images, masks, blend).astype(np.float32)
    return InpaintResult(
        filled=filled, generated=generated, z=tf.gather(state[0], rows).numpy(), loss=loss.numpy(), history=hist
    )
