"""SavedModel export for TF Serving: the whole inpainting runs inside one request.

`export` writes a TF Serving model base path: `OUT/<version>/` (one SavedModel) and
`OUT/model.json` (the model card). Signatures (batch dimension unknown everywhere):

- `serving_default`: `image` uint8 `[N, S, S, 3]`, `mask` float32 `[N, S, S, 1]` (1 = known
  pixel, 0 = missing) -> `inpainted` uint8, `generated` uint8, `loss` float32 `[N]`, with
  the model card's search settings.
- `inpaint`: the same plus scalars `iterations` (int32), `lam` (float32), `restarts`
  (int32) and `seed` (int64). TF Serving needs every input of a signature in each
  request, so the settings are optional by choice of signature.
- `generate`: `z` float32 `[N, latent]` -> `image` uint8.
- `discriminate`: `image` uint8 -> `logit` and `probability` float32 `[N]`.

The latent search is a `tf.while_loop` whose loop variables hold z and Adam's moments,
so concurrent requests share no state; Poisson blending (eq. 6) is solved in the graph
by conjugate gradients on the masked Laplacian.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import types
from pathlib import Path

from tfinpaint._backend import require_tensorflow_backend

require_tensorflow_backend()

import tensorflow as tf  # noqa: E402

from tfinpaint.inpaint import SearchSettings, contextual_loss, importance_weights, perceptual_loss  # noqa: E402

ADAM_BETA2 = 0.999
ADAM_EPSILON = 1e-7  # Keras's Adam, so the graph search follows the Python one step for step
CG_TOLERANCE = 1e-6
CG_MAX_ITERATIONS = 4000


class ExportError(RuntimeError):
    """The export cannot be written; nothing was left half-written."""


def to_float(image: tf.Tensor) -> tf.Tensor:
    """uint8 [0, 255] to float32 [-1, 1]."""
    return tf.cast(image, tf.float32) / 127.5 - 1.0


def to_uint8(x: tf.Tensor) -> tf.Tensor:
    """float [-1, 1] to uint8, rounding."""
    return tf.cast(tf.clip_by_value(tf.round((x + 1.0) * 127.5), 0.0, 255.0), tf.uint8)


def _neighbour_sum(x: tf.Tensor) -> tf.Tensor:
    """Sum over the 4 neighbours inside the image, `[N, H, W, C]` (zero outside)."""
    padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
    return padded[:, :-2, 1:-1] + padded[:, 2:, 1:-1] + padded[:, 1:-1, :-2] + padded[:, 1:-1, 2:]


def poisson_blend(source: tf.Tensor, target: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Eq. 6 in the graph: the system of `blend.PoissonSolver`, solved by conjugate gradients.

    Args:
        source: G(z) `[N, H, W, C]`.
        target: y `[N, H, W, C]`; read only where the mask is 1.
        mask: `[N, H, W, 1]`, 1 = known.

    Returns:
        `[N, H, W, C]`: y at known pixels, the Poisson solution in the hole.
    """
    known = tf.cast(mask > 0.5, source.dtype)
    hole = 1.0 - known
    y = tf.where(mask > 0.5, target, tf.zeros_like(target))
    inside = _neighbour_sum(tf.ones_like(known))  # number of in-image neighbours
    rhs = hole * (inside * source - _neighbour_sum(source) + _neighbour_sum(known * y))

    def apply(x):  # the masked Laplacian on hole pixels (x is zero elsewhere)
        return hole * (inside * x - _neighbour_sum(hole * x))

    def dot(a, b):
        return tf.reduce_sum(a * b, axis=[1, 2], keepdims=True)  # per image and channel

    # No known pixel at all: nothing fixes the level; keep G(z) as it is.
    boundless = tf.reduce_sum(known, axis=[1, 2, 3], keepdims=True) == 0
    x = tf.zeros_like(source)
    r = rhs
    p = r
    rr = dot(r, r)
    limit = (CG_TOLERANCE**2) * tf.maximum(dot(rhs, rhs), 1e-30)

    def cond(i, x, r, p, rr):
        return tf.logical_and(i < CG_MAX_ITERATIONS, tf.reduce_any(rr > limit))

    def body(i, x, r, p, rr):
        ap = apply(p)
        pap = dot(p, ap)
        alpha = tf.math.divide_no_nan(rr, pap)
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = dot(r, r)
        p = r + tf.math.divide_no_nan(rr_new, rr) * p
        return i + 1, x, r, p, rr_new

    _, x, *_ = tf.while_loop(cond, body, [tf.constant(0), x, r, p, rr])
    x = tf.where(boundless, source, x)
    return known * y + hole * x


class InpaintingModule(tf.Module):
    """G, D and the search, as the functions the SavedModel serves."""

    def __init__(self, generator, discriminator, settings: SearchSettings):
        super().__init__(name="tfinpaint")
        # The functions capture the tf.Variables inside Keras 3's variables. TF Serving and
        # saved_model_cli (the TF1 loader) find only variables tracked as such, so those are
        # tracked; the Keras models are kept out of tracking, else every weight is stored twice.
        self._keras = types.SimpleNamespace(generator=generator, discriminator=discriminator)
        self.served_variables = [v._value for v in generator.weights + discriminator.weights]
        self.settings = settings
        size, ch, latent = generator.image_size, generator.channels, generator.latent_dim
        self.image_spec = tf.TensorSpec([None, size, size, ch], tf.uint8, name="image")
        self.mask_spec = tf.TensorSpec([None, size, size, 1], tf.float32, name="mask")
        self.z_spec = tf.TensorSpec([None, latent], tf.float32, name="z")
        float_images = tf.TensorSpec([None, size, size, ch], tf.float32)
        # Differentiable float functions, for `load_exported` (the Python API on a SavedModel).
        self.generator_fn = tf.function(lambda z: generator(z, training=False), input_signature=[self.z_spec])
        self.discriminator_fn = tf.function(lambda x: discriminator(x, training=False), input_signature=[float_images])

    def _checked_image(self, image):
        size, ch = self._keras.generator.image_size, self._keras.generator.channels
        ok = tf.debugging.assert_equal(
            tf.shape(image)[1:],
            tf.constant([size, size, ch]),
            message=f"input image must be uint8 [N, {size}, {size}, {ch}]; its shape is",
        )
        with tf.control_dependencies([ok]):
            return tf.identity(image)

    def _checked_mask(self, mask, image):
        size = self._keras.generator.image_size
        ok = tf.debugging.assert_equal(
            tf.shape(mask),
            tf.concat([tf.shape(image)[:1], [size, size, 1]], axis=0),
            message=f"input mask must be float32 [N, {size}, {size}, 1] with the N of image; its shape is",
        )
        with tf.control_dependencies([ok]):
            return tf.identity(mask)

    def search(self, image, mask, iterations, lam, restarts, seed):
        """The latent search and blending for uint8 images; returns the three outputs."""
        s = self.settings
        image = self._checked_image(image)
        mask = self._checked_mask(mask, image)
        y = to_float(image)
        n = tf.shape(y)[0]
        latent = self._keras.generator.latent_dim
        y_k = tf.tile(tf.where(mask > 0.5, y, tf.zeros_like(y)), [restarts, 1, 1, 1])
        m_k = tf.tile(mask, [restarts, 1, 1, 1])
        w_k = importance_weights(m_k) if s.weighted else m_k
        # row r * n + i: restart r of image i, from z drawn for (seed, r) as in the Python API
        rows = tf.map_fn(
            lambda r: tf.random.stateless_uniform([latent], seed=tf.stack([seed, r]), minval=-1.0, maxval=1.0),
            tf.range(tf.cast(restarts, tf.int64)),
            fn_output_signature=tf.float32,
        )
        z0 = tf.repeat(rows, n, axis=0)

        def loss_of(z):
            g = self._keras.generator(z, training=False)
            return contextual_loss(g, y_k, m_k, w_k) + lam * perceptual_loss(
                self._keras.discriminator(g, training=False)
            ), g

        def body(t, z, m, v):
            with tf.GradientTape() as tape:
                tape.watch(z)
                loss, _ = loss_of(z)
                total = tf.reduce_sum(loss)
            grad = tape.gradient(total, z)
            step = tf.cast(t + 1, tf.float32)
            m = m + (grad - m) * (1.0 - s.beta1)
            v = v + (tf.square(grad) - v) * (1.0 - ADAM_BETA2)
            alpha = s.lr * tf.sqrt(1.0 - ADAM_BETA2**step) / (1.0 - s.beta1**step)
            z = tf.clip_by_value(z - alpha * m / (tf.sqrt(v) + ADAM_EPSILON), -1.0, 1.0)
            return t + 1, z, m, v

        zeros = tf.zeros_like(z0)
        _, z, _, _ = tf.while_loop(lambda t, *_: t < iterations, body, [tf.constant(0), z0, zeros, zeros])
        loss, generated = loss_of(z)
        best = tf.argmin(tf.reshape(loss, [restarts, n]), axis=0, output_type=tf.int32)
        pick = best * n + tf.range(n)
        generated = tf.gather(generated, pick)
        loss = tf.gather(loss, pick)
        blended = poisson_blend(generated, y, mask)
        return {"inpainted": to_uint8(blended), "generated": to_uint8(generated), "loss": loss}

    def signatures(self) -> dict:
        s = self.settings

        @tf.function(input_signature=[self.image_spec, self.mask_spec])
        def serving_default(image, mask):
            return self.search(
                image,
                mask,
                tf.constant(s.iterations),
                tf.constant(s.lam, tf.float32),
                tf.constant(s.restarts),
                tf.constant(s.seed, tf.int64),
            )

        @tf.function(
            input_signature=[
                self.image_spec,
                self.mask_spec,
                tf.TensorSpec([], tf.int32, name="iterations"),
                tf.TensorSpec([], tf.float32, name="lam"),
                tf.TensorSpec([], tf.int32, name="restarts"),
                tf.TensorSpec([], tf.int64, name="seed"),
            ]
        )
        def inpaint(image, mask, iterations, lam, restarts, seed):
            tf.debugging.assert_positive(restarts, message="restarts must be at least 1")
            tf.debugging.assert_non_negative(iterations, message="iterations must be 0 or more")
            return self.search(image, mask, iterations, lam, restarts, seed)

        @tf.function(input_signature=[self.z_spec])
        def generate(z):
            latent = self._keras.generator.latent_dim
            ok = tf.debugging.assert_equal(
                tf.shape(z)[1:], tf.constant([latent]), message=f"input z must be float32 [N, {latent}]; its shape is"
            )
            with tf.control_dependencies([ok]):
                z = tf.identity(z)
            return {"image": to_uint8(self._keras.generator(z, training=False))}

        @tf.function(input_signature=[self.image_spec])
        def discriminate(image):
            image = self._checked_image(image)
            logit = tf.reshape(self._keras.discriminator(to_float(image), training=False), [-1])
            return {"logit": logit, "probability": tf.sigmoid(logit)}

        return {
            "serving_default": serving_default,
            "inpaint": inpaint,
            "generate": generate,
            "discriminate": discriminate,
        }


def export(
    run_dir: str | os.PathLike,
    out: str | os.PathLike,
    version: int = 1,
    overwrite: bool = False,
    settings: SearchSettings | None = None,
    card_extra: dict | None = None,
) -> Path:
    """Export a training run as a TF Serving model base path; returns the version folder.

    The SavedModel is written to a temporary folder beside its destination and renamed
    at the end, so a failed export leaves nothing behind.
    """
    from tfinpaint.fill import search_settings
    from tfinpaint.train import load_run

    g, d, card = load_run(run_dir)
    out = Path(out)
    target = out / str(version)
    if target.exists() and not overwrite:
        raise ExportError(f"{target} exists; pass --overwrite to replace it, or choose another --version")
    settings = settings or search_settings(card)
    module = InpaintingModule(g, d, settings)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=out))
    try:
        tf.saved_model.save(module, str(tmp), signatures=module.signatures())
        card = {
            **card,
            "format": "tfinpaint-export/1",
            "version": version,
            "search": dataclasses.asdict(settings),
            "mask": "float32 [N, H, W, 1]: 1 = known pixel, 0 = missing",
            **(card_extra or {}),
        }
        card_tmp = out / f".model.json.{os.getpid()}"
        card_tmp.write_text(json.dumps(card, indent=2) + "\n")
        tmp.chmod(0o755)  # mkdtemp's 0700 would keep a server running as another user out
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
        card_tmp.replace(out / "model.json")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def latest_version(base: Path) -> Path:
    versions = sorted((int(p.name), p) for p in base.iterdir() if p.name.isdigit() and (p / "saved_model.pb").is_file())
    if not versions:
        raise ExportError(f"{base} holds no SavedModel version folder")
    return versions[-1][1]


class _Restored:
    """A restored G or D function with the attributes `inpaint` reads."""

    def __init__(self, fn, image_size: int, latent_dim: int, channels: int):
        self.fn = fn
        self.image_size = image_size
        self.latent_dim = latent_dim
        self.channels = channels

    def __call__(self, x, training=False):
        return self.fn(x)


def load_exported(base: str | os.PathLike) -> tuple[_Restored, _Restored, dict]:
    """G, D (as differentiable restored functions) and the card of an exported model."""
    base = Path(base)
    card = json.loads((base / "model.json").read_text())
    loaded = tf.saved_model.load(str(latest_version(base)))
    dims = (int(card["image_size"]), int(card["latent_dim"]), int(card.get("channels", 3)))
    g = _Restored(loaded.generator_fn, *dims)
    d = _Restored(loaded.discriminator_fn, *dims)
    g.keep_alive = d.keep_alive = loaded
    return g, d, card
