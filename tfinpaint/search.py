"""The latent search of eqs. 2-4: find z whose G(z) matches the known pixels and fools D.

z starts from U[-1, 1]; Adam updates z alone through a `GradientTape`, clipping z to
[-1, 1] after every step. G and D run in inference mode, and every model call of the
search runs on each image alone (`per_image`), so an image's result is the same, bit for
bit, whatever else is in its batch and wherever it stands in it.

The search is written once: `search_start` (tiled inputs and initial latents),
`search_step` (one Adam step on z, state `(z, m, v, t)` as tensors) and `search_finish`
(the final loss and the best restart). `inpaint` runs the step in a Python loop (for
progress reports); the SavedModel runs the same step in a `tf.while_loop`. Adam is
written out as Keras's Adam computes it, so both follow it step for step.

A second stage may follow (`SearchSettings.refine`): the same loss, minimised from the
chosen z over G's weights or G's intermediate activations, so the fill can come closer to
the photo than any G(z) (Pan et al., Deep Generative Prior, 2020; Gu et al., 2020). Its
steps are written once too and run in Python loops here, in `tf.while_loop`s in the export.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from tfinpaint import blend as blend_lib
from tfinpaint.constants import BLENDS
from tfinpaint.errors import ArgumentError
from tfinpaint.losses import importance_weights
from tfinpaint.refine import FEATURE_DEPTH, refine_images, refines
from tfinpaint.settings import SearchSettings
from tfinpaint.steps import adam_update, per_image, search_loss

__all__ = ["FEATURE_DEPTH", "InpaintResult", "SearchSettings", "inpaint", "per_image", "refines"]


@dataclasses.dataclass
class InpaintResult:
    """What `inpaint` returns; arrays are numpy.

    Attributes:
        filled: `[N, H, W, C]` in [-1, 1], G(z) blended into the known pixels (None
            when `inpaint` was asked not to blend).
        generated: G(z) `[N, H, W, C]` in [-1, 1].
        z: the chosen latents `[N, latent_dim]`.
        loss: final total loss per image `[N]`.
        history: total loss per step of the chosen latent `[steps, N]`: the z search's
            iterations, then the refinement's steps (an image not refined keeps its loss).
    """

    filled: np.ndarray | None
    generated: np.ndarray
    z: np.ndarray
    loss: np.ndarray
    history: np.ndarray


# --- the search, in three parts ------------------------------------------------------


def initial_latents(n, latent_dim: int, seed, restarts) -> tf.Tensor:
    """z from U[-1, 1] `[restarts * n, latent_dim]`: row r * n + i is restart r of image i.

    Every image gets the same z for a given (seed, restart), so no result depends on the
    image's place in the batch. `n`, `seed` and `restarts` may be tensors.
    """
    seed = tf.cast(seed, tf.int64)

    def row(r):
        return tf.random.stateless_uniform([latent_dim], seed=tf.stack([seed, r]), minval=-1.0, maxval=1.0)

    count = tf.get_static_value(restarts)
    if count is not None:  # known now: a Python loop, as map_fn's first eager call costs 0.1-0.2 s
        rows = tf.stack([row(tf.constant(r, tf.int64)) for r in range(int(count))])
    else:
        rows = tf.map_fn(row, tf.range(tf.cast(restarts, tf.int64)), fn_output_signature=tf.float32)
    return tf.repeat(rows, n, axis=0)


def encoder_latents(encoder, images, masks) -> tf.Tensor:
    """The encoder's z for images `[N, H, W, C]` in [-1, 1] and their masks, `[N, latent_dim]`
    (each image alone)."""
    return per_image(lambda x, m: tf.clip_by_value(encoder(x, m, training=False), -1.0, 1.0), images, masks)


def search_start(images, masks, latent_dim: int, weighted: bool, restarts, seed, start=None):
    """Inputs tiled once per restart, their weights, and the initial state `(z, m, v, t)`.

    Args:
        images: y `[N, H, W, C]` in [-1, 1]; the hole is never read.
        masks: `[N, H, W, 1]`, 1 = known.
        start: `[N, latent_dim]`, the first restart's z instead of the seeded random one
            (e.g. `encoder_latents`); the other restarts keep theirs.

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
    if start is not None:
        z = tf.concat([tf.convert_to_tensor(start, tf.float32), z[tf.shape(images)[0] :]], axis=0)
    zeros = tf.zeros_like(z)
    return (y, m, w), (z, zeros, zeros, tf.constant(0))


def lift(z, min_rms):
    """Each row of z `[N, latent_dim]` whose root-mean-square component is below `min_rms`
    scaled up to it, then clipped to [-1, 1]; with `min_rms` 0, z as it is."""
    rms = tf.sqrt(tf.reduce_mean(tf.square(z), axis=-1, keepdims=True))
    return tf.clip_by_value(z * tf.maximum(min_rms / tf.maximum(rms, 1e-12), 1.0), -1.0, 1.0)


def search_step(generator, discriminator, state, inputs, lam, lr, beta1, min_rms):
    """One Adam step on z, then z clipped to [-1, 1] (and `lift`ed to `min_rms`).

    Args:
        state: `(z, m, v, t)`: latents, Adam's moments, steps done.
        inputs: `(y, m, w)` from `search_start`.
        lam, lr, beta1: the perceptual weight, Adam's learning rate (float32) and beta_1 (float64).
        min_rms: `SearchSettings.min_z_rms` (float32; 0 leaves z as the step left it).

    Returns:
        The next state and the loss per row `[rows]` before the step.
    """
    z, m, v, t = state

    def one(z, m, v, *inputs):  # each row alone (`per_image`)
        with tf.GradientTape() as tape:
            tape.watch(z)
            loss, _ = search_loss(generator, discriminator, z, *inputs, lam)
        z, m, v = adam_update(z, tape.gradient(loss, z), m, v, t, lr, beta1)
        return lift(tf.clip_by_value(z, -1.0, 1.0), min_rms), m, v, loss

    z, m, v, loss = per_image(one, z, m, v, *inputs, outputs=4)
    return (z, m, v, t + 1), loss


# Traced per (G, D) pair and batch size, without AutoGraph (see `refine`'s traced steps).
_step = functools.partial(tf.function, autograph=False)(search_step)


def traces() -> int:
    """How many times the search step was traced (each costs a quarter of a second): once per
    (G, D) pair and batch size, however many searches run."""
    return _step.experimental_get_tracing_count()


def search_finish(generator, discriminator, z, inputs, lam, n, restarts):
    """G(z), the final loss and the chosen row of each image (its lowest-loss restart).

    Returns:
        `generated [n, H, W, C]`, `loss [n]`, `rows [n]` (indices into the restarts' rows).
    """
    loss, generated = per_image(lambda *x: search_loss(generator, discriminator, *x, lam), z, *inputs, outputs=2)
    best = tf.argmin(tf.reshape(loss, tf.stack([restarts, n])), axis=0, output_type=tf.int32)
    rows = best * n + tf.range(n)
    return tf.gather(generated, rows), tf.gather(loss, rows), rows


# --- beyond z: the refinement stage ----------------------------------------------------
#
# Both refinements start from the chosen z and minimise the same eq. 4 (the weighted
# contextual loss plus lam times the perceptual loss of eq. 3) with Adam, over more than z:
# `generator` over G's own weights, one image at a time (as tensors passed to Keras's
# `stateless_call`, so every image starts from the shipped weights and none is ever
# changed), `features` over G's activations after its first `FEATURE_DEPTH` blocks, a
# batch at a time (each image has its own map).


def _as_batch(masks, n: int, h: int, w: int) -> np.ndarray:
    masks = np.asarray(masks, np.float32)
    if masks.ndim == 3:
        masks = np.broadcast_to(masks[None], (n,) + masks.shape)
    if masks.shape != (n, h, w, 1):
        raise ArgumentError(f"Expected masks of shape {(n, h, w, 1)} or {(h, w, 1)}, got {masks.shape}")
    return masks


def inpaint(
    images,
    masks,
    generator,
    discriminator,
    settings: SearchSettings | None = None,
    blend: str | None = "poisson",
    progress: Callable[[int, float], None] | None = None,
    latents=None,
    encoder=None,
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
        latents: `[N, latent_dim]`, where the search starts instead of the seeded random z
            (one restart only), e.g. an earlier result's `z`: with `iterations=0` the
            refinement alone runs from it.
        encoder: the model's encoder (`tfinpaint.load_model(...).encoder`), where the
            search starts unless `settings.init` is `random`.

    Returns:
        An `InpaintResult`.
    """
    s = dataclasses.replace(settings or SearchSettings(), **overrides)
    if blend is not None and blend not in BLENDS:
        raise ArgumentError(f"Unknown blend {blend!r}; expected one of {BLENDS} or None")
    images = np.asarray(images, np.float32)
    n, h, w, c = images.shape
    size = generator.image_size
    if (h, w, c) != (size, size, generator.channels):
        raise ArgumentError(f"Expected images of shape [N, {size}, {size}, {generator.channels}], got {images.shape}")
    masks = _as_batch(masks, n, h, w)
    start = encoder_latents(encoder, images, masks) if s.starts_from_encoder(encoder) and latents is None else None
    if latents is not None:
        start = np.asarray(latents, np.float32)
        if s.restarts != 1 or start.shape != (n, generator.latent_dim):
            raise ArgumentError(
                f"Expected latents of shape {(n, generator.latent_dim)} and one restart, "
                f"got {start.shape} and {s.restarts}"
            )
    inputs, state = search_start(images, masks, generator.latent_dim, s.weighted, s.restarts, s.seed, start)
    lam, lr, beta1 = tf.constant(s.lam, tf.float32), tf.constant(s.lr, tf.float32), tf.constant(s.beta1, tf.float64)
    min_rms = tf.constant(s.min_z_rms, tf.float32)
    history = []
    every = max(1, s.iterations // 100)
    for it in range(s.iterations):
        state, loss = _step(generator, discriminator, state, inputs, lam, lr, beta1, min_rms)
        history.append(loss)
        if progress and ((it + 1) % every == 0 or it + 1 == s.iterations):
            progress(it + 1, float(tf.reduce_mean(loss)))
    generated, loss, rows = search_finish(generator, discriminator, state[0], inputs, lam, n, s.restarts)
    z = tf.gather(state[0], rows)
    rows = rows.numpy()
    hist = tf.stack(history).numpy()[:, rows] if history else np.zeros((0, n), np.float32)
    refined = refines(s, masks).numpy()
    generated, loss = generated.numpy(), loss.numpy()
    if refined.any():
        which = np.flatnonzero(refined)
        chosen = tuple(tf.gather(x, rows[which]) for x in inputs)
        report = (lambda k, loss: progress(s.iterations + k, loss)) if progress else None
        generated[which], loss[which], more = refine_images(
            generator, discriminator, s, tf.gather(z, which), chosen, lam, beta1, report
        )
        hist = np.concatenate([hist, np.broadcast_to(loss, (s.refine_steps, n))])
        hist[s.iterations :, which] = more
    filled = None if blend is None else blend_lib.blend_batch(generated, images, masks, blend).astype(np.float32)
    return InpaintResult(filled=filled, generated=generated, z=z.numpy(), loss=loss, history=hist)
