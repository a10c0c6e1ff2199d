"""Differentiable Augmentation for data-efficient GAN training (Zhao et al., NeurIPS 2020).

The same kind of random augmentation is applied to real and generated images before
D sees them, in both the D and the G update; because every op is differentiable, G
learns through it, and D cannot simply memorise the few thousand training images.
Policies follow the authors' code: `color` (brightness, saturation, contrast),
`translation` (shift by up to 1/8 of the side, zero fill), `cutout` (a zeroed square
half the side, anywhere).

Randomness is stateless and drawn for the whole global batch from a seed, so a replica
that augments its slice of the batch does exactly what one device does for the whole.
"""

from __future__ import annotations

import tensorflow as tf

from tfinpaint.constants import AUGMENT_POLICIES
from tfinpaint.errors import ArgumentError

POLICIES = AUGMENT_POLICIES
TRANSLATION_RATIO = 1 / 8
CUTOUT_RATIO = 1 / 2


def parse_policy(spec: str | None) -> tuple[str, ...]:
    """`"translation,cutout"` -> ("translation", "cutout"); "" or None -> ()."""
    names = tuple(p.strip() for p in (spec or "").split(",") if p.strip())
    for p in names:
        if p not in POLICIES:
            raise ArgumentError(f"Unknown augmentation {p!r}; expected some of {', '.join(POLICIES)}")
    return names


def _uniform(seed, global_batch: int, start, count, shape=(), minval=0.0, maxval=1.0, dtype=tf.float32):
    """Stateless uniform numbers for rows [start, start + count) of a global batch."""
    values = tf.random.stateless_uniform([global_batch, *shape], seed=seed, minval=minval, maxval=maxval, dtype=dtype)
    return values[start:][:count]


def _color(x, seeds, global_batch, start):
    n = tf.shape(x)[0]
    brightness = _uniform(seeds[0], global_batch, start, n, (1, 1, 1), -0.5, 0.5)
    x = x + brightness
    saturation = _uniform(seeds[1], global_batch, start, n, (1, 1, 1), 0.0, 2.0)
    mean = tf.reduce_mean(x, axis=3, keepdims=True)
    x = (x - mean) * saturation + mean
    contrast = _uniform(seeds[2], global_batch, start, n, (1, 1, 1), 0.5, 1.5)
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    return (x - mean) * contrast + mean


def _translation(x, seeds, global_batch, start):
    n, h, w = tf.shape(x)[0], x.shape[1], x.shape[2]
    sh, sw = int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)
    dy = _uniform(seeds[0], global_batch, start, n, (1,), -sh, sh + 1, tf.int32)
    dx = _uniform(seeds[1], global_batch, start, n, (1,), -sw, sw + 1, tf.int32)

    def shift(images, offset, size, axis):
        # out[i] = images[i - offset] inside the image, 0 outside: gather from a copy padded
        # with one zero row (or column) on each side.
        index = tf.clip_by_value(tf.range(size)[None] - offset + 1, 0, size + 1)  # [n, size]
        pad = [[0, 0], [1, 1], [0, 0], [0, 0]] if axis == 1 else [[0, 0], [0, 0], [1, 1], [0, 0]]
        return tf.gather(tf.pad(images, pad), index, axis=axis, batch_dims=1)

    return shift(shift(x, dy, h, 1), dx, w, 2)


def _cutout(x, seeds, global_batch, start):
    n, h, w = tf.shape(x)[0], x.shape[1], x.shape[2]
    ch, cw = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
    cy = _uniform(seeds[0], global_batch, start, n, (1, 1), 0, h + (1 - ch % 2), tf.int32)
    cx = _uniform(seeds[1], global_batch, start, n, (1, 1), 0, w + (1 - cw % 2), tf.int32)
    rows = tf.range(h)[None, :, None]
    cols = tf.range(w)[None, None, :]
    inside = (rows >= cy - ch // 2) & (rows < cy - ch // 2 + ch) & (cols >= cx - cw // 2) & (cols < cx - cw // 2 + cw)
    return x * tf.cast(~inside, x.dtype)[..., None]


_FNS = {"color": _color, "translation": _translation, "cutout": _cutout}


def diff_augment(images: tf.Tensor, policy: tuple[str, ...], seed: tf.Tensor, global_batch: int, start=0) -> tf.Tensor:
    """Augment `images` `[n, H, W, C]` (in [-1, 1]) with each policy in turn.

    Args:
        images: rows [start, start + n) of a global batch of `global_batch` images.
        policy: names from `POLICIES`, applied in order.
        seed: int64 `[2]` stateless seed for the whole global batch.
        global_batch: the global batch size the random numbers are drawn for.
        start: index of this slice's first row in the global batch.

    Returns:
        Augmented images, same shape; differentiable with respect to `images`.
    """
    x = images
    for k, name in enumerate(policy):
        seeds = [tf.random.experimental.stateless_fold_in(seed, 10 * k + i) for i in range(3)]
        x = _FNS[name](x, seeds, global_batch, start)
    return x
