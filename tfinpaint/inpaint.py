"""The latent search of eqs. 2-4: find z whose G(z) matches the known pixels and fools D.

z is a `tf.Variable` drawn from U[-1, 1]; Adam updates z alone through a
`GradientTape`, in one `tf.function` step, clipping z to [-1, 1] after every step.
G and D run in inference mode, and the batch loss is the sum of per-image losses, so
an image's result does not depend on the other images of its batch.
"""

from __future__ import annotations

import dataclasses
import sys
import types
from collections.abc import Callable

import numpy as np

from tfinpaint._backend import require_tensorflow_backend

require_tensorflow_backend()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfinpaint import blend as blend_lib  # noqa: E402

WINDOW = 7  # the CVPR version's importance-weighting window


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


@dataclasses.dataclass
class InpaintResult:
    """What `inpaint` returns; arrays are numpy.

    Attributes:
        filled: `[N, H, W, C]` in [-1, 1], G(z) blended into the known pixels.
        generated: G(z) `[N, H, W, C]` in [-1, 1].
        z: the chosen latents `[N, latent_dim]`.
        loss: final total loss per image `[N]`.
        history: total loss per iteration of the chosen latent `[iterations, N]`.
    """

    filled: np.ndarray
    generated: np.ndarray
    z: np.ndarray
    loss: np.ndarray
    history: np.ndarray


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


def initial_latents(n: int, latent_dim: int, seed: int, restart: int) -> tf.Tensor:
    """z from U[-1, 1] `[n, latent_dim]`; every image gets the same z for a given (seed, restart),
    so no result depends on the image's place in the batch."""
    row = tf.random.stateless_uniform([1, latent_dim], seed=[seed, restart], minval=-1.0, maxval=1.0)
    return tf.tile(row, [n, 1])


class LatentSearch:
    """The compiled search for one (G, D) pair and one number of latents.

    `run` may be called many times; the step is traced once per batch shape.
    """

    def __init__(self, generator: keras.Model, discriminator: keras.Model, rows: int, beta1: float):
        self.generator = generator
        self.discriminator = discriminator
        self.z = tf.Variable(tf.zeros([rows, generator.latent_dim]), trainable=True, name="z")
        self.optimizer = keras.optimizers.Adam(beta_1=beta1)
        self.optimizer.build([self.z])
        self.step = tf.function(self._step)
        self.loss_fn = tf.function(self._loss)

    def _loss(self, z, images, masks, weights, lam):
        generated = self.generator(z, training=False)
        context = contextual_loss(generated, images, masks, weights)
        perceptual = perceptual_loss(self.discriminator(generated, training=False))
        return context + lam * perceptual, generated

    def _step(self, images, masks, weights, lam):
        with tf.GradientTape() as tape:
            tape.watch(self.z)
            loss, _ = self._loss(self.z, images, masks, weights, lam)
            total = tf.reduce_sum(loss)  # a sum: no image's gradient depends on another
        grads = tape.gradient(total, [self.z])
        self.optimizer.apply_gradients(zip(grads, [self.z]))
        self.z.assign(tf.clip_by_value(self.z, -1.0, 1.0))
        return loss

    def reset(self, z0: tf.Tensor, lr: float) -> None:
        """Start a new search from `z0`: fresh Adam moments and step count, learning rate `lr`."""
        self.z.assign(z0)
        for v in self.optimizer.variables:
            v.assign(tf.zeros_like(v))
        self.optimizer.learning_rate.assign(lr)


_searches: dict[tuple, LatentSearch] = {}


def _search_for(generator, discriminator, rows: int, beta1: float) -> LatentSearch:
    key = (id(generator), id(discriminator), rows, beta1)
    found = _searches.get(key)
    if found is None or found.generator is not generator or found.discriminator is not discriminator:
        if len(_searches) > 16:
            _searches.clear()
        found = _searches[key] = LatentSearch(generator, discriminator, rows, beta1)
    return found


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
    generator: keras.Model,
    discriminator: keras.Model,
    settings: SearchSettings | None = None,
    blend: str = "poisson",
    progress: Callable[[int, float], None] | None = None,
    **overrides,
) -> InpaintResult:
    """Fill the holes of `images` with G(z) for the z found by the latent search.

    Args:
        images: y, `[N, H, W, C]` float in [-1, 1] at the model's size; holes are never read.
        masks: `[N, H, W, 1]` (one per image) or `[H, W, 1]` (for all), 1 = known.
        generator, discriminator: a trained pair (`tfinpaint.train.load_run`).
        settings: search settings; keyword `overrides` replace single fields
            (e.g. `iterations=100`).
        blend: `poisson` (eq. 6) or `overlay` (eq. 5).
        progress: called as `progress(iteration, mean_loss)` every few iterations.

    Returns:
        An `InpaintResult`.
    """
    s = dataclasses.replace(settings or SearchSettings(), **overrides)
    if s.iterations < 0 or s.restarts < 1:
        raise ValueError(f"Expected iterations >= 0 and restarts >= 1, got {s.iterations} and {s.restarts}")
    images = np.asarray(images, np.float32)
    n, h, w, c = images.shape
    size = generator.image_size
    if (h, w, c) != (size, size, generator.channels):
        raise ValueError(f"Expected images of shape [N, {size}, {size}, {generator.channels}], got {images.shape}")
    masks = _as_batch(masks, n, h, w)
    k = s.restarts
    # rows: restart r of image i is row r * n + i
    y = tf.constant(np.tile(np.where(masks > 0.5, images, 0.0), (k, 1, 1, 1)))
    m = tf.constant(np.tile(masks, (k, 1, 1, 1)))
    wts = importance_weights(m) if s.weighted else m
    lam = tf.constant(s.lam, tf.float32)
    search = _search_for(generator, discriminator, n * k, s.beta1)
    search.reset(tf.concat([initial_latents(n, generator.latent_dim, s.seed, r) for r in range(k)], axis=0), s.lr)
    history = []
    every = max(1, s.iterations // 100)
    for it in range(s.iterations):
        loss = search.step(y, m, wts, lam)
        history.append(loss)
        if progress and ((it + 1) % every == 0 or it + 1 == s.iterations):
            progress(it + 1, float(tf.reduce_mean(loss)))
    final, generated = search.loss_fn(search.z, y, m, wts, lam)
    final = final.numpy().reshape(k, n)
    best = final.argmin(axis=0)
    rows = best * n + np.arange(n)
    hist = tf.stack(history).numpy()[:, rows] if history else np.zeros((0, n), np.float32)
    generated = generated.numpy()[rows]
    filled = blend_lib.blend_batch(generated, images, masks, blend)
    return InpaintResult(
        filled=filled.astype(np.float32),
        generated=generated,
        z=search.z.numpy()[rows],
        loss=final[best, np.arange(n)],
        history=hist,
    )


class _CallableModule(types.ModuleType):
    """Lets `tfinpaint.inpaint(...)` call `inpaint` although `tfinpaint.inpaint` is this module."""

    def __call__(self, *args, **kwargs) -> InpaintResult:
        return inpaint(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
