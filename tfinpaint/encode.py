"""Training the inpainting encoder E (`models.Encoder`) against a trained, frozen G and D.

E maps a masked image and its mask to a z, where the latent search then starts
(`SearchSettings.init`). Each step shows it a batch of G's own samples and a batch of
training images, each under masks of every kind (`masks.any_kind`):

- samples x = G(z), z known: the latent loss mean (E(x) - z)^2 and the pixel loss
  mean |G(E(x)) - x| over the whole image, hole included;
- training images y: eq. 2's contextual loss, mean |G(E(y)) - y| over the known pixels,
  plus `lam` times eq. 3's perceptual loss log(1 - D(G(E(y)))), scaled as the search's.

G and D run in inference mode and never change. `train_encoder` writes into a run
directory: checkpoints (resumed by the same command), `encoder.json` (its settings) and
at the end `encoder.keras` and the card's `encoder` entry; a run made from an export or a
shipped model gets that model's `generator.keras` and `discriminator.keras` beside it, so
the folder is a whole run that `tfinpaint export` takes.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfinpaint import data as data_lib
from tfinpaint import masks as masks_lib
from tfinpaint import store
from tfinpaint.errors import TrainingError
from tfinpaint.losses import contextual_loss, perceptual_loss
from tfinpaint.models import build_encoder
from tfinpaint.runloop import Loop, checkpoint_seconds, save_checkpoint_seconds

MASK_BANK = 8192  # masks made once per run; each step draws from them, rotated and flipped
# Settings a resumed encoder run must keep.
FIXED_ON_RESUME = ("model", "dataset", "width", "batch_size", "seed", "latent_weight", "lam")
REPO = Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """What an encoder run depends on; saved as `encoder.json` in the run directory.

    Attributes:
        model: the trained G and D (a run, an export or a shipped model's name).
        run_dir: where the encoder goes; None: the model's own folder, which must be a run.
        dataset: the training images (TFDS name, folders, globs); None: the model card's,
            with its held-out images kept out.
        data_dir: TFDS data directory.
        width: E's first convolution's channels; None: the model's width.
        steps: steps to train in total.
        batch_size: samples and training images per step (each).
        lr: Adam's learning rate.
        latent_weight: weight of the latent loss against the pixel losses.
        lam: weight of the perceptual loss on training images, as the search's lambda.
        seed: seeds the masks, z and the order of the images.
        checkpoint_every: steps between checkpoints.
    """

    model: str
    run_dir: str | None = None
    dataset: tuple[str, ...] | None = None
    data_dir: str | None = None
    width: int | None = None
    steps: int = 4000
    batch_size: int = 64
    lr: float = 3e-4
    latent_weight: float = 0.1
    lam: float = 0.003
    seed: int = 0
    checkpoint_every: int = 250


def training_source(card: store.ModelCard, dataset: tuple[str, ...] | None) -> data_lib.Source:
    """The images an encoder trains on: those given, or the card's training images with
    its held-out ones kept out (folders are looked for as recorded and from the repository).

    Raises:
        TrainingError: the card's data cannot be found here.
    """
    if dataset:
        return data_lib.resolve(list(dataset), card.preprocess, 0)
    if isinstance(card.dataset, str) and card.dataset and not data_lib.looks_like_path(card.dataset):
        held = re.fullmatch(r"train\[:(\d+)\]", card.heldout[0]) if card.heldout else None
        return data_lib.resolve(card.dataset, card.preprocess, int(held.group(1)) if held else 0)
    folders = card.dataset_folders(relative_to=REPO)
    recorded = [card.dataset] if isinstance(card.dataset, str) else list(card.dataset)
    if not folders or len(folders) != len(recorded):
        raise TrainingError(
            f"The model's training data ({', '.join(recorded) or 'none recorded'}) is not here; pass `dataset`"
        )
    source = data_lib.resolve([str(f) for f in folders], card.preprocess, len(card.heldout))
    if sorted(Path(f).name for f in source.heldout) != sorted(Path(f).name for f in card.heldout):
        raise TrainingError(f"The held-out images of {folders[0]} are not the model card's; pass `dataset`")
    return source


def mask_bank(size: int, count: int, seed: int) -> np.ndarray:
    """`count` masks of every kind, uint8 `[count, size, size, 1]`."""
    rng = np.random.default_rng([seed, 4242])
    return np.stack([masks_lib.any_kind(size, rng) for _ in range(count)]).astype(np.uint8)


class EncoderTrainer:
    """E, its optimizer, and the compiled step, for a frozen G and D."""

    def __init__(self, config: EncoderConfig, model: store.Model):
        self.config, self.model = config, model
        g, card = model.generator, model.card
        keras.utils.set_random_seed(config.seed)
        self.encoder = build_encoder(
            card.image_size, config.width or card.width, card.latent_dim, card.channels, card.batch_norm
        )
        self.optimizer = keras.optimizers.Adam(config.lr, beta_1=0.9)
        self.optimizer.build(self.encoder.trainable_variables)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.checkpoint = tf.train.Checkpoint(
            encoder_weights=list(self.encoder.weights), optimizer=self.optimizer, step=self.step
        )
        self.bank = tf.constant(mask_bank(g.image_size, MASK_BANK, config.seed))
        self._step = tf.function(self._train_step)

    def masks(self, step, k: int) -> tf.Tensor:
        """A batch of masks from the bank, each turned by a multiple of 90 degrees and maybe flipped."""
        seed = tf.stack([tf.cast(self.config.seed, tf.int64), step * 2 + k])
        n = self.config.batch_size
        idx = tf.random.stateless_uniform([n], seed, 0, MASK_BANK, dtype=tf.int32)
        m = tf.cast(tf.gather(self.bank, idx), tf.float32)
        turns = tf.random.stateless_uniform([n], seed + 1, 0, 8, dtype=tf.int32)
        m = tf.where((turns % 2 == 1)[:, None, None, None], tf.reverse(m, [2]), m)
        return tf.where((turns // 2 % 2 == 1)[:, None, None, None], tf.transpose(m, [0, 2, 1, 3]), m)

    def _train_step(self, real, step):
        c, g, d, e = self.config, self.model.generator, self.model.discriminator, self.encoder
        n = tf.shape(real)[0]
        z = tf.random.stateless_uniform(
            tf.stack([n, g.latent_dim]), tf.stack([tf.cast(c.seed, tf.int64), step]), -1.0, 1.0
        )
        fake = g(z, training=False)
        m_fake, m_real = self.masks(step, 0), self.masks(step, 1)
        with tf.GradientTape() as tape:
            z_fake = e(fake, m_fake, training=True)
            z_real = e(real, m_real, training=True)
            drawn = g(tf.concat([z_fake, z_real], 0), training=False)
            g_fake, g_real = drawn[:n], drawn[n:]
            latent = tf.reduce_mean(tf.square(z_fake - z))
            pixel = tf.reduce_mean(tf.abs(g_fake - fake))
            known = tf.reduce_sum(m_real, axis=[1, 2, 3]) * g.channels
            context = contextual_loss(g_real, real, m_real)
            perceptual = perceptual_loss(d(g_real, training=False))
            real_loss = tf.reduce_mean(tf.math.divide_no_nan(context + c.lam * perceptual * g.channels, known))
            loss = pixel + c.latent_weight * latent + real_loss
        grads = tape.gradient(loss, e.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, e.trainable_variables))
        return {"loss": loss, "latent": latent, "pixel": pixel, "context": tf.reduce_mean(context / known)}


def _check_resume(run_dir: Path, config: EncoderConfig) -> None:
    path = run_dir / "encoder.json"
    if not path.exists():
        return
    old = json.loads(path.read_text())
    new = json.loads(json.dumps(dataclasses.asdict(config)))
    changed = [f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in FIXED_ON_RESUME if old.get(k) != new[k]]
    if changed:
        raise TrainingError(f"{run_dir} holds an encoder run with other settings ({'; '.join(changed)})")


def train_encoder(config: EncoderConfig, verbose: int = 1) -> Path:
    """Train (or resume) the encoder of `config.model` until `config.steps`; returns the run
    directory, which then holds `encoder.keras` and a card with its `encoder` entry.

    Raises:
        TrainingError: no run directory for a model that is not a run, the model's data
            is not here, a loss became NaN, or the run holds an encoder with other settings.
    """
    path, card = store.load_card(config.model)
    if config.run_dir is None and not store.is_run(path):
        raise TrainingError(f"{config.model} is not a training run: pass `run_dir` for the run the encoder goes into")
    run_dir = Path(config.run_dir) if config.run_dir is not None else path
    model = store.load_model(config.model)
    _check_resume(run_dir, config)
    source = training_source(card, config.dataset)
    base, count = data_lib.base_dataset(source, card.image_size, card.channels, config.data_dir)
    steps_per_epoch = count // config.batch_size
    if steps_per_epoch == 0:
        raise TrainingError(f"{count} training images are fewer than one batch of {config.batch_size}")
    trainer = EncoderTrainer(config, model)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "encoder.json").write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n")
    manager = tf.train.CheckpointManager(trainer.checkpoint, run_dir / "encoder_checkpoints", max_to_keep=2)
    if manager.latest_checkpoint:
        trainer.checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        if verbose:
            print(f"Resuming the encoder in {run_dir} at step {int(trainer.step.numpy())}")
    step = int(trainer.step.numpy())
    seconds = (checkpoint_seconds(run_dir / "encoder_checkpoints") or 0.0) if step else 0.0  # before this session
    tic = time.perf_counter()

    def after_step(step: int, values: dict[str, float], rate: float) -> None:
        trainer.step.assign(step)
        if step % config.checkpoint_every == 0 or step == config.steps:
            manager.save(checkpoint_number=step)
            save_checkpoint_seconds(run_dir / "encoder_checkpoints", seconds + time.perf_counter() - tic)

    loop = Loop(
        config.steps,
        steps_per_epoch,
        lambda epoch, skip, take: (
            data_lib.epoch_dataset(base, count, config.batch_size, epoch, config.seed + 1).skip(skip).take(take)
        ),
        lambda batch, step: {k: float(v) for k, v in trainer._step(batch, tf.constant(step, tf.int64)).items()},
        shown=("loss", "pixel", "context"),
        title="Encoder epoch",
        nan=lambda step, _: f"The encoder's loss became NaN or Inf at step {step}; its last checkpoint is kept",
        batch_size=config.batch_size,
        verbose=verbose,
    )
    loop.run(step, after_step)
    seconds += time.perf_counter() - tic
    _save(run_dir, path, model, card, trainer, count, seconds)
    return run_dir


def _save(run_dir: Path, source_path: Path, model: store.Model, card: store.ModelCard, trainer, count, seconds):
    c = trainer.config
    encoder_card = {
        "width": trainer.encoder.width,
        "steps": c.steps,
        "batch_size": c.batch_size,
        "training_images": count,
        "training_seconds": round(seconds, 1),
    }
    card = dataclasses.replace(card, format=store.RUN_FORMAT, encoder=encoder_card)
    if run_dir.resolve() == source_path.resolve():
        trainer.encoder.save(run_dir / "encoder.keras")
        card.write(run_dir / store.CARD)
    else:
        store.save_run(run_dir, model.generator, model.discriminator, card, encoder=trainer.encoder)
