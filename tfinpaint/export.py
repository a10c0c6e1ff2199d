"""SavedModel export for TF Serving: the whole inpainting runs inside one request.

`export` writes a TF Serving model base path: `OUT/<version>/` (one SavedModel) and
`OUT/model.json` (the model card). Signatures (batch dimension unknown everywhere):

- `serving_default`: `image` uint8 `[N, S, S, 3]`, `mask` float32 `[N, S, S, 1]` (1 = known
  pixel, 0 = missing; values are thresholded at 0.5, NaN or Inf is refused) -> `inpainted`
  uint8, `generated` uint8, `loss` float32 `[N]`, with the model card's search settings.
  N must be at least 1; a wrong shape or an empty batch is refused with a message naming
  the input (InvalidArgument, HTTP 400 in TF Serving).
- `inpaint`: the same plus scalars `iterations` (int32), `lam` (float32), `restarts`
  (int32) and `seed` (int64). TF Serving needs every input of a signature in each
  request, so the settings are optional by choice of signature.
- `generate`: `z` float32 `[N, latent]` -> `image` uint8.
- `discriminate`: `image` uint8 -> `logit` and `probability` float32 `[N]`.

The latent search is a `tf.while_loop` whose loop variables hold z and Adam's moments,
so concurrent requests share no state; so does the refinement beyond z the settings may
ask for (G's activations, or G's weights as loop variables of a loop per image, never the
stored variables). Poisson blending (eq. 6) is solved in the graph by conjugate
gradients on the masked Laplacian.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import types
from pathlib import Path

import tensorflow as tf

from tfinpaint import files, store
from tfinpaint.errors import ExportError
from tfinpaint.refine import (
    FEATURE_DEPTH,
    features_image,
    refine_features_start,
    refine_features_step,
    refine_generator_start,
    refine_generator_step,
    refined_generator,
    refines,
)
from tfinpaint.search import encoder_latents, search_finish, search_start, search_step
from tfinpaint.settings import SearchSettings
from tfinpaint.steps import fit_loss_each, per_image

CG_TOLERANCE = 1e-6
CG_MAX_ITERATIONS = 4000


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

    def __init__(self, generator, discriminator, settings: SearchSettings, encoder=None):
        super().__init__(name="tfinpaint")
        # The functions capture the tf.Variables inside Keras 3's variables. TF Serving and
        # saved_model_cli (the TF1 loader) find only variables tracked as such, so those are
        # tracked; the Keras models are kept out of tracking, else every weight is stored twice.
        self._keras = types.SimpleNamespace(generator=generator, discriminator=discriminator, encoder=encoder)
        # G's, D's, then the encoder's (if any): the order `store` reads them back in
        models = [m for m in (generator, discriminator, encoder) if m is not None]
        self.served_variables = [v._value for m in models for v in m.weights]
        self.settings = settings
        size, ch, latent = generator.image_size, generator.channels, generator.latent_dim
        self.image_spec = tf.TensorSpec([None, size, size, ch], tf.uint8, name="image")
        self.mask_spec = tf.TensorSpec([None, size, size, 1], tf.float32, name="mask")
        self.z_spec = tf.TensorSpec([None, latent], tf.float32, name="z")
        float_images = tf.TensorSpec([None, size, size, ch], tf.float32)
        # Differentiable float G and D, for Python users of the SavedModel (tf.saved_model.load).
        self.generator_fn = tf.function(lambda z: generator(z, training=False), input_signature=[self.z_spec])
        self.discriminator_fn = tf.function(lambda x: discriminator(x, training=False), input_signature=[float_images])

    def _checked_image(self, image):
        size, ch = self._keras.generator.image_size, self._keras.generator.channels
        ok = tf.debugging.assert_equal(
            tf.shape(image)[1:],
            tf.constant([size, size, ch]),
            message=f"input image must be uint8 [N, {size}, {size}, {ch}]; its shape is",
        )
        some = tf.debugging.assert_positive(
            tf.shape(image)[0], message="input image must hold at least one image (N >= 1); N is"
        )
        with tf.control_dependencies([ok, some]):
            return tf.identity(image)

    def _checked_mask(self, mask, image):
        size = self._keras.generator.image_size
        ok = tf.debugging.assert_equal(
            tf.shape(mask),
            tf.concat([tf.shape(image)[:1], [size, size, 1]], axis=0),
            message=f"input mask must be float32 [N, {size}, {size}, 1] with the N of image; its shape is",
        )
        finite = tf.debugging.assert_equal(
            tf.reduce_all(tf.math.is_finite(mask)), True, message="input mask must be finite (1 = known, 0 = missing)"
        )
        with tf.control_dependencies([ok, finite]):
            return tf.cast(mask >= 0.5, tf.float32)  # thresholded: 0.5 and above is known

    def search(self, image, mask, iterations, lam, restarts, seed):
        """The latent search (the library's own step, in a `tf.while_loop`) and blending."""
        s = self.settings
        g, d = self._keras.generator, self._keras.discriminator
        image = self._checked_image(image)
        mask = self._checked_mask(mask, image)
        y = to_float(image)
        e = self._keras.encoder
        start = encoder_latents(e, y, mask) if s.starts_from_encoder(e) else None
        inputs, state = search_start(y, mask, g.latent_dim, s.weighted, restarts, seed, start)
        lr, beta1 = tf.constant(s.lr, tf.float32), tf.constant(s.beta1, tf.float64)
        min_rms = tf.constant(s.min_z_rms, tf.float32)

        def body(*state):
            state, _ = search_step(g, d, state, inputs, lam, lr, beta1, min_rms)
            return state

        z, *_ = tf.while_loop(lambda z, m, v, t: t < iterations, body, state)
        generated, loss, rows = search_finish(g, d, z, inputs, lam, tf.shape(y)[0], restarts)
        if s.refining:  # every image is refined alone, so those the settings leave out keep G(z)
            chosen = tuple(tf.gather(x, rows) for x in inputs)
            refined = self.refine(tf.gather(z, rows), chosen, lam, beta1)
            generated = tf.where(refines(s, mask)[:, None, None, None], refined, generated)
            loss = fit_loss_each(generated, d, *chosen, lam)
        blended = poisson_blend(generated, y, mask)
        return {"inpainted": to_uint8(blended), "generated": to_uint8(generated), "loss": loss}

    def refine(self, z, inputs, lam, beta1):
        """The search's refinement stage (its own steps, in `tf.while_loop`s): G(z) refined."""
        s = self.settings
        g, d = self._keras.generator, self._keras.discriminator
        lr = tf.constant(s.refine_rate, tf.float32)
        more = lambda *state: state[-1] < s.refine_steps  # noqa: E731
        if s.refine_method == "features":

            def body(*state):
                return refine_features_step(g, d, state, inputs, lam, lr, beta1, FEATURE_DEPTH)[0]

            h, *_ = tf.while_loop(more, body, refine_features_start(g, z, FEATURE_DEPTH))
            return features_image(g, h, FEATURE_DEPTH)

        def one(z1, *rest):  # generator: each image from the exported weights

            def body(*state):
                return refine_generator_step(g, d, state, z1, rest, lam, lr, beta1)[0]

            weights, *_ = tf.while_loop(more, body, refine_generator_start(g))
            return refined_generator(g, weights, z1)

        return per_image(one, z, *inputs)

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
            finite = tf.debugging.assert_equal(
                tf.reduce_all(tf.math.is_finite(z)), True, message="input z must be finite (G was trained on [-1, 1])"
            )
            with tf.control_dependencies([ok, finite]):
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


# What makes two exports the same model, besides their weights: a base path serves one model.
IDENTITY = ("image_size", "latent_dim", "channels", "width", "batch_norm", "spectral_norm", "preprocess", "dataset")


def weights_fingerprint(model: store.Model) -> str:
    """SHA-256 of G's, D's and E's weights, in order: which trained model this is."""
    digest = hashlib.sha256()
    for m in (model.generator, model.discriminator, model.encoder):
        for w in m.weights if m is not None else ():
            digest.update(w.numpy().tobytes())
    return digest.hexdigest()


def _check_same_model(out: Path, target: Path, card: store.ModelCard, fingerprint: str) -> None:
    """Refuse to add a version of another model to a base path whose other versions serve one:
    TF Serving would switch models at the next version, and the base's one card describes both."""
    others = [p for p in out.iterdir() if p.name.isdigit() and p != target and (p / "saved_model.pb").is_file()]
    if not others or not (out / store.CARD).is_file():
        return
    served = store.ModelCard.read(out / store.CARD)
    differ = [k for k in IDENTITY if getattr(served, k) != getattr(card, k)]
    if served.extra.get("weights_sha256") not in (None, fingerprint):
        differ.append("weights")
    if differ:
        raise ExportError(
            f"{out} already serves another model (version {max(int(p.name) for p in others)}; its "
            f"{', '.join(differ)} differ): TF Serving would switch to this one at the next version. "
            "Export to a new base path, or pass `force=True` to add it anyway"
        )


def export(
    model: str | os.PathLike | store.Model,
    out: str | os.PathLike,
    version: int = 1,
    overwrite: bool = False,
    settings: SearchSettings | None = None,
    card_extra: dict | None = None,
    force: bool = False,
) -> Path:
    """Export a model (a run, an export or a shipped name) as a TF Serving model base path;
    returns the version folder.

    The SavedModel is written to a temporary folder beside its destination and renamed
    at the end, so a failed export leaves nothing behind; one killed leaves its folder,
    which the next export into `out` removes. A base path whose other versions hold another
    model (architecture, training data or weights) is refused unless `force`.
    """
    if not isinstance(model, store.Model):
        model = store.load_model(model)
    out = Path(out)
    target = out / str(version)
    if target.exists() and not overwrite:
        raise ExportError(f"{target} exists; pass `overwrite=True` to replace it, or choose another `version`")
    fingerprint = weights_fingerprint(model)
    if out.is_dir() and not force:
        recorded = {k: v for k, v in (card_extra or {}).items() if k in IDENTITY}  # as the card will say
        _check_same_model(out, target, dataclasses.replace(model.card, **recorded), fingerprint)
    settings = settings or model.card.search_settings()
    settings.starts_from_encoder(model.encoder)  # refuses init "encoder" without one
    module = InpaintingModule(model.generator, model.discriminator, settings, model.encoder)
    out.mkdir(parents=True, exist_ok=True)
    files.remove_stale_temporaries(out)  # of exports that were killed
    tmp = files.temp_path(target)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        tf.saved_model.save(module, str(tmp), signatures=module.signatures())
        extra = {
            **model.card.extra,
            "version": version,
            "weights_sha256": fingerprint,
            "mask": "float32 [N, H, W, 1]: 1 = known pixel, 0 = missing",
            **(card_extra or {}),
        }
        data = {key: extra.pop(key) for key in ("dataset", "heldout") if key in extra}  # card_extra may replace them
        card = dataclasses.replace(
            model.card, format=store.EXPORT_FORMAT, search=dataclasses.asdict(settings), extra=extra, **data
        )
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
        card.write(out / store.CARD)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
