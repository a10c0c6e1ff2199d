"""Beyond z: after the latent search, the same loss minimised from the chosen z over G's
weights or G's intermediate activations, so the fill can come closer to the photo than any
G(z) (Pan et al., Deep Generative Prior, 2020; Gu et al., 2020). The steps are written
once: `inpaint` runs them in Python loops, the SavedModel in `tf.while_loop`s."""

from __future__ import annotations

import functools

import tensorflow as tf

from tfinpaint.settings import SearchSettings
from tfinpaint.steps import adam_update, fit_loss, fit_loss_each, per_image

FEATURE_DEPTH = 1  # `refine="features"` optimises G's 8x8 activations (for 64x64 images)
# `refine="auto"` refines the features of an image when at least this share of its hole lies
# within 1/NEAR of the image's side (4 pixels at 64x64) of a known pixel (random 80%: 1.0,
# pattern blobs 0.6-0.96, the centre block 0.44, a half 0.13): refinement gained on
# scattered holes and lost on large ones.
AUTO_SHARE = 0.5
NEAR = 16


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
_generator_step = _traced(refine_generator_step)
_features_step = _traced(refine_features_step)
_refined_generator = _traced(refined_generator)


def refine_images(generator, discriminator, s: SearchSettings, z, inputs, lam, beta1, progress):
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
