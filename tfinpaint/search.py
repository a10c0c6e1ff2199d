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
import math
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from tfinpaint import blend as blend_lib
from tfinpaint.constants import BLENDS, INITS, REFINES
from tfinpaint.errors import ArgumentError, ModelError
from tfinpaint.losses import contextual_loss, importance_weights, perceptual_loss

ADAM_BETA2 = 0.999
ADAM_EPSILON = 1e-7  # Keras's defaults
REFINE_LR = {"generator": 1e-4, "features": 0.01}  # chosen on faces 000001-000016 (README)
FEATURE_DEPTH = 1  # `refine="features"` optimises G's 8x8 activations (for 64x64 images)
# `refine="auto"` refines the features of an image when at least this share of its hole lies
# within 1/NEAR of the image's side (4 pixels at 64x64) of a known pixel (random 80%: 1.0,
# pattern blobs 0.6-0.96, the centre block 0.44, a half 0.13): refinement gained on
# scattered holes and lost on large ones.
AUTO_SHARE = 0.5
NEAR = 16


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
        refine: after the z search, `none`; `generator`: fine-tune G's weights on each
            image; `features`: optimise G's activations after its first `FEATURE_DEPTH`
            blocks; `auto`: `features` for the images whose holes are scattered
            (`scattered`), `none` for the others (README, "Beyond z").
        refine_steps: Adam steps of the refinement.
        refine_lr: its learning rate (None: `REFINE_LR` of the refinement chosen).
        init: where the search starts: `encoder`, the model's encoder's z for each image
            (its other restarts from the seeded random z); `random`, the seeded random z;
            `auto`, the encoder when the model has one.
    """

    iterations: int = 300
    lam: float = 0.003
    lr: float = 0.03
    beta1: float = 0.9
    restarts: int = 1
    weighted: bool = True
    seed: int = 0
    refine: str = "auto"
    refine_steps: int = 100
    refine_lr: float | None = None
    init: str = "auto"

    def __post_init__(self):
        if self.init not in INITS:
            raise ArgumentError(f"Unknown init {self.init!r}; expected one of {INITS}")
        if self.iterations < 0 or self.restarts < 1:
            raise ArgumentError(
                f"Expected iterations >= 0 and restarts >= 1, got {self.iterations} and {self.restarts}"
            )
        if self.refine not in REFINES:
            raise ArgumentError(f"Unknown refine {self.refine!r}; expected one of {REFINES}")
        for name, low in (("lam", 0.0), ("lr", None), ("beta1", 0.0)):
            value = getattr(self, name)
            number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not (number and (value > 0 if low is None else value >= low)):
                raise ArgumentError(
                    f"Expected a finite {name} {'> 0' if low is None else f'>= {low:g}'}, got {value!r}"
                )
        if not 0 <= self.seed < 2**63:
            raise ArgumentError(f"Expected a seed in 0 ... 2**63 - 1, got {self.seed}")
        if self.refine_steps < 0 or (
            self.refine_lr is not None and not (math.isfinite(self.refine_lr) and self.refine_lr > 0)
        ):
            raise ArgumentError(
                f"Expected refine_steps >= 0 and refine_lr > 0, got {self.refine_steps} and {self.refine_lr}"
            )

    def starts_from_encoder(self, encoder) -> bool:
        """Whether the search starts from `encoder`'s z (None: the model has no encoder).

        Raises:
            ModelError: `init="encoder"` and no encoder.
        """
        if self.init == "encoder" and encoder is None:
            raise ModelError("`init=encoder` needs a model with an encoder (see tfinpaint train-encoder)")
        return encoder is not None and self.init != "random"

    @property
    def refining(self) -> bool:
        """Whether a refinement follows the z search (for some images at least)."""
        return self.refine != "none" and self.refine_steps > 0

    @property
    def steps(self) -> int:
        """Adam steps per image in all: the z search's and the refinement's."""
        return self.iterations + (self.refine_steps if self.refining else 0)

    @property
    def refine_method(self) -> str:
        """The refinement run on the images it applies to (`auto` runs `features`)."""
        return "features" if self.refine == "auto" else self.refine

    @property
    def refine_rate(self) -> float:
        return self.refine_lr if self.refine_lr is not None else REFINE_LR.get(self.refine_method, 0.0)


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


# --- one image at a time --------------------------------------------------------------


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

    def one(z, m, v, *inputs):  # each row alone (`per_image`)
        with tf.GradientTape() as tape:
            tape.watch(z)
            loss, _ = search_loss(generator, discriminator, z, *inputs, lam)
        z, m, v = adam_update(z, tape.gradient(loss, z), m, v, t, lr, beta1)
        return tf.clip_by_value(z, -1.0, 1.0), m, v, loss

    z, m, v, loss = per_image(one, z, m, v, *inputs, outputs=4)
    return (z, m, v, t + 1), loss


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


def scattered(masks) -> tf.Tensor:
    """Which images `refine="auto"` refines, bool `[N]`: those with at least `AUTO_SHARE` of
    their hole within a 1/`NEAR` of the side (a square window) of a known pixel. With no hole, none."""
    masks = tf.cast(tf.convert_to_tensor(masks) > 0.5, tf.float32)
    reach = max(1, int(masks.shape[1]) // NEAR)
    near = tf.nn.max_pool2d(masks, 2 * reach + 1, strides=1, padding="SAME")
    hole = 1.0 - masks
    holes = tf.reduce_sum(hole, axis=[1, 2, 3])
    share = tf.math.divide_no_nan(tf.reduce_sum(hole * near, axis=[1, 2, 3]), holes)
    return tf.logical_and(holes > 0, share >= AUTO_SHARE)


def refines(settings: SearchSettings, masks) -> tf.Tensor:
    """Which images the settings' refinement applies to, bool `[N]`."""
    n = tf.shape(masks)[:1]
    if not settings.refining:
        return tf.zeros(n, tf.bool)
    return scattered(masks) if settings.refine == "auto" else tf.ones(n, tf.bool)


def refine_generator_start(generator):
    """The state `(weights, m, v, t)` of a generator refinement: G's trainable weights as tensors."""
    weights = [v.value for v in generator.trainable_variables]
    zeros = [tf.zeros_like(w) for w in weights]
    return weights, zeros, zeros, tf.constant(0)


def refine_generator_step(generator, discriminator, state, z, inputs, lam, lr, beta1):
    """One Adam step on G's weights for the images `inputs` (one image: they share the weights).

    Returns:
        The next state, and the loss per image before the step.
    """
    weights, m, v, t = state
    with tf.GradientTape() as tape:
        tape.watch(weights)
        generated = refined_generator(generator, weights, z)
        loss = fit_loss(generated, discriminator, *inputs, lam)
        total = tf.reduce_sum(loss)
    grads = tape.gradient(total, weights)
    steps = [adam_update(*args, t, lr, beta1) for args in zip(weights, grads, m, v)]
    return tuple([list(x) for x in zip(*steps)]) + (t + 1,), loss


def refined_generator(generator, weights, z):
    """G(z) drawn with refined weights."""
    frozen = [x.value for x in generator.non_trainable_variables]
    return generator.stateless_call(weights, frozen, z, training=False)[0]


def refine_features_start(generator, z, depth: int):
    """The state `(h, m, v, t)` of a feature refinement: G's activations at `depth` for z."""
    h = per_image(lambda z: generator.features(z, depth, training=False), z)
    zeros = tf.zeros_like(h)
    return h, zeros, zeros, tf.constant(0)


def refine_features_step(generator, discriminator, state, inputs, lam, lr, beta1, depth: int):
    """One Adam step on the feature maps, kept non-negative (they follow a ReLU).

    Returns:
        The next state, and the loss per image before the step.
    """
    h, m, v, t = state

    def one(h, m, v, *inputs):  # each image alone (`per_image`)
        with tf.GradientTape() as tape:
            tape.watch(h)
            loss = fit_loss(generator.from_features(h, depth, training=False), discriminator, *inputs, lam)
        h, m, v = adam_update(h, tape.gradient(loss, h), m, v, t, lr, beta1)
        return tf.nn.relu(h), m, v, loss

    h, m, v, loss = per_image(one, h, m, v, *inputs, outputs=4)
    return (h, m, v, t + 1), loss


def features_image(generator, h, depth: int) -> tf.Tensor:
    """The image G draws from refined activations `h`, each image alone."""
    return per_image(lambda h: generator.from_features(h, depth, training=False), h)


# Traced per (G, D) pair and batch size; tf.function keys G and D by weak reference. Not
# `reduce_retracing`: TensorFlow 2.21's remapper fails on the step traced for any batch
# size and prints an error line in the user's terminal ("Mutation::Apply error: fanout
# ... LeakyReluGrad"). No AutoGraph: the steps have no Python control flow on tensors,
# and rewriting their source costs ~0.3 s of one photo's fill. `search_finish` runs once
# a search, so it runs eagerly: tracing it would cost more (~0.25 s) than it saves.
_traced = functools.partial(tf.function, autograph=False)
_step = _traced(search_step)
_generator_step = _traced(refine_generator_step)
_features_step = _traced(refine_features_step)
_refined_generator = _traced(refined_generator)


# --- the Python API ------------------------------------------------------------------


def _as_batch(masks, n: int, h: int, w: int) -> np.ndarray:
    masks = np.asarray(masks, np.float32)
    if masks.ndim == 3:
        masks = np.broadcast_to(masks[None], (n,) + masks.shape)
    if masks.shape != (n, h, w, 1):
        raise ArgumentError(f"Expected masks of shape {(n, h, w, 1)} or {(h, w, 1)}, got {masks.shape}")
    return masks


def _refine(generator, discriminator, s: SearchSettings, z, inputs, lam, beta1, progress):
    """The refinement stage of `inpaint`: G(z) refined, its loss `[n]` and history `[steps, n]`."""
    lr = tf.constant(s.refine_rate, tf.float32)
    n = int(z.shape[0])
    every = max(1, s.refine_steps // 20)
    if s.refine_method == "features":
        state = refine_features_start(generator, z, FEATURE_DEPTH)
        history = []
        for k in range(s.refine_steps):
            state, loss = _features_step(generator, discriminator, state, inputs, lam, lr, beta1, FEATURE_DEPTH)
            history.append(loss)
            if progress and ((k + 1) % every == 0 or k + 1 == s.refine_steps):
                progress(k + 1, float(tf.reduce_mean(loss)))
        generated = features_image(generator, state[0], FEATURE_DEPTH)
        history = tf.stack(history)
    else:  # generator: one image at a time, each from the shipped weights
        out, histories = [], []
        for i in range(n):
            one = tuple(x[i : i + 1] for x in inputs)
            state = refine_generator_start(generator)
            losses = []
            for _ in range(s.refine_steps):
                state, loss = _generator_step(generator, discriminator, state, z[i : i + 1], one, lam, lr, beta1)
                losses.append(loss)
            out.append(_refined_generator(generator, state[0], z[i : i + 1]))
            histories.append(tf.concat(losses, axis=0))
            if progress:
                progress(round((i + 1) / n * s.refine_steps), float(tf.reduce_mean([p[-1] for p in histories])))
        generated = tf.concat(out, axis=0)
        history = tf.stack(histories, axis=1)
    loss = fit_loss_each(generated, discriminator, *inputs, lam).numpy()
    return generated.numpy(), loss, history.numpy()


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
    history = []
    every = max(1, s.iterations // 100)
    for it in range(s.iterations):
        state, loss = _step(generator, discriminator, state, inputs, lam, lr, beta1)
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
        generated[which], loss[which], more = _refine(
            generator, discriminator, s, tf.gather(z, which), chosen, lam, beta1, report
        )
        hist = np.concatenate([hist, np.broadcast_to(loss, (s.refine_steps, n))])
        hist[s.iterations :, which] = more
    filled = None if blend is None else blend_lib.blend_batch(generated, images, masks, blend).astype(np.float32)
    return InpaintResult(filled=filled, generated=generated, z=z.numpy(), loss=loss, history=hist)
