"""DCGAN training: the GAN step as one `tf.function`, the epoch loop around it.

The loop runs under a `tf.distribute.Strategy`. Its run directory holds checkpoints
(resumed automatically), `config.json`, a sample grid per epoch, TensorBoard logs,
and at the end `generator.keras`, `discriminator.keras` and `model.json`.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfinpaint import augment as augment_lib
from tfinpaint import data as data_lib
from tfinpaint import faces, metrics, store
from tfinpaint import images as images_lib
from tfinpaint.constants import LOSSES
from tfinpaint.errors import TrainingError
from tfinpaint.losses import discriminator_loss, generator_loss
from tfinpaint.models import Generator, build_pair
from tfinpaint.recipe import TrainConfig, check_resume, make_strategy, run_card
from tfinpaint.runloop import Loop, checkpoint_seconds, save_checkpoint_seconds


class Trainer:
    """Holds G, D, their optimizers and the compiled GAN step for one run."""

    def __init__(self, config: TrainConfig, strategy: tf.distribute.Strategy | None = None):
        self.config = config.resolved()
        c = self.config
        if c.loss not in LOSSES:
            raise TrainingError(f"Unknown loss {c.loss!r}; expected one of {LOSSES}")
        self.strategy = strategy or make_strategy(c.strategy)
        keras.utils.set_random_seed(c.seed)
        with self.strategy.scope():
            self.generator, self.discriminator = build_pair(
                c.image_size, c.width, c.latent_dim, c.channels, c.batch_norm, c.spectral_norm
            )
            self.g_opt = keras.optimizers.Adam(c.lr, beta_1=c.beta1)
            self.d_opt = keras.optimizers.Adam(c.d_lr, beta_1=c.beta1)
            self.g_opt.build(self.generator.trainable_variables)
            self.d_opt.build(self.discriminator.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.ema_generator = None
            if c.ema:
                self.ema_generator = Generator(
                    c.image_size, c.width, c.latent_dim, c.channels, c.batch_norm, name="generator"
                )
                self.ema_generator.build((None, c.latent_dim))
                self.ema_generator.set_weights(self.generator.get_weights())
        self.augment = augment_lib.parse_policy(c.augment)
        tracked = dict(
            generator=self.generator,
            discriminator=self.discriminator,
            g_opt=self.g_opt,
            d_opt=self.d_opt,
            step=self.step,
        )
        if self.ema_generator is not None:
            tracked["ema_generator"] = self.ema_generator
        # The models' own checkpoint dependencies miss the layers they keep in lists (the
        # up-convolutions and their batch norms): a model's weights are reached only through
        # its optimizer, and an EMA generator's not at all, so a resumed run lost them. Every
        # weight is tracked here by position as well (the models are built the same way each run).
        for name, model in (("generator", self.generator), ("discriminator", self.discriminator)):
            tracked[f"{name}_weights"] = list(model.weights)
        if self.ema_generator is not None:
            tracked["ema_generator_weights"] = list(self.ema_generator.weights)
        self.tracked = tracked  # what the checkpoint holds, by name
        self.checkpoint = tf.train.Checkpoint(**tracked)
        self._train_step = tf.function(self._distributed_step)

    @property
    def final_generator(self) -> Generator:
        """The generator that is saved, sampled and filled with: the EMA one when on."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    # --- the GAN step -------------------------------------------------------------

    def _replica_step(self, real: tf.Tensor, step: tf.Tensor):
        c = self.config
        ctx = tf.distribute.get_replica_context()
        local = tf.shape(real)[0]
        # z for the whole global batch from (seed, step); each replica takes its slice,
        # so N replicas see exactly the z one device would.
        z_all = tf.random.stateless_uniform(
            [c.batch_size, c.latent_dim], seed=tf.stack([tf.cast(c.seed, tf.int64), step]), minval=-1.0, maxval=1.0
        )
        start = ctx.replica_id_in_sync_group * local
        z = z_all[start:][:local]
        scale = 1.0 / c.batch_size
        seed = tf.stack([tf.cast(c.seed, tf.int64), step])

        def augment(images, k):  # k: which of the step's three augmented batches
            if not self.augment:
                return images
            return augment_lib.diff_augment(
                images, self.augment, tf.random.experimental.stateless_fold_in(seed, k), c.batch_size, start
            )

        # G's forward pass is recorded once and reused by its first update (as in
        # pytorch/examples): D's update does not change G, so G(z) would come out the same.
        g_tape = tf.GradientTape()
        with g_tape:
            fake = self.generator(z, training=True)
        with tf.GradientTape() as tape:
            real_logits = self.discriminator(augment(real, 1), training=True)
            fake_logits = self.discriminator(augment(fake, 2), training=True)
            d_loss = tf.reduce_sum(discriminator_loss(real_logits, fake_logits, c.loss)) * scale
        grads = tape.gradient(d_loss, self.discriminator.trainable_variables)
        self.d_opt.apply_gradients(zip(grads, self.discriminator.trainable_variables))
        for i in range(c.g_steps):
            if i:
                g_tape = tf.GradientTape()
                with g_tape:
                    fake = self.generator(z, training=True)
            with g_tape:
                fake_logits = self.discriminator(augment(fake, 3), training=True)
                g_loss = tf.reduce_sum(generator_loss(fake_logits, c.loss)) * scale
            grads = g_tape.gradient(g_loss, self.generator.trainable_variables)
            self.g_opt.apply_gradients(zip(grads, self.generator.trainable_variables))
        d_real = tf.reduce_sum(tf.sigmoid(real_logits)) * scale
        d_fake = tf.reduce_sum(tf.sigmoid(fake_logits)) * scale
        return {"d_loss": d_loss, "g_loss": g_loss, "d_real": d_real, "d_fake": d_fake}

    def _distributed_step(self, real, step):
        per_replica = self.strategy.run(self._replica_step, args=(real, step))
        self.discriminator.advance_spectral_norm()  # in cross-replica context, as the EMA
        if self.ema_generator is not None:
            self._update_ema(step)
        return {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()}

    def _update_ema(self, step):
        """EMA of G's trainable weights, in cross-replica context (every replica gets the same).

        The decay ramps up as min(decay, (1 + t) / (10 + t)), as in tf.train.ExponentialMovingAverage,
        so the first steps' random weights fade quickly."""
        t = tf.cast(step, tf.float32)
        decay = tf.minimum(self.config.ema, (1.0 + t) / (10.0 + t))
        for avg, w in zip(self.ema_generator.trainable_variables, self.generator.trainable_variables):
            avg.assign(decay * avg + (1.0 - decay) * w)

    @property
    def traces(self) -> int:
        """How many times the GAN step was traced: once a run, whatever its steps."""
        return self._train_step.experimental_get_tracing_count()

    def train_step(self, real, step: int) -> dict[str, float]:
        """One D update then `g_steps` G updates on a global batch; returns the losses."""
        out = self._train_step(real, tf.constant(step, tf.int64))
        return {k: float(v) for k, v in out.items()}

    def start_from(self, model: store.Model) -> None:
        """Take G's and D's weights (batch-norm statistics included) from a trained model;
        an EMA generator starts from the same G."""
        for mine, theirs in ((self.generator, model.generator), (self.discriminator, model.discriminator)):
            mine.set_weights(theirs.get_weights())
        if self.ema_generator is not None:
            self.ema_generator.set_weights(model.generator.get_weights())

    # --- samples ------------------------------------------------------------------

    def fixed_z(self, n: int = 64) -> tf.Tensor:
        return tf.random.stateless_uniform(
            [n, self.config.latent_dim], seed=[self.config.seed, -1], minval=-1.0, maxval=1.0
        )

    def samples(self) -> np.ndarray:
        """The saved generator's images of `fixed_z()`, `[64, H, W, C]` in [-1, 1]."""
        return self.final_generator(self.fixed_z(), training=False).numpy()

    def recalibrate(self, real_batches, batches: int = 16) -> None:
        """Set G's and D's batch-norm statistics to the population statistics of the
        current weights (the mean over `batches` batches), for inference mode; with an
        EMA generator, for both generators, and D's from the EMA generator's samples.

        During GAN training the weights move faster than a moving average can follow,
        and inference-mode samples drift far from training-mode ones; inpainting runs
        G and D in inference mode, so their statistics must describe the final G and D.
        D's are taken, as in training, from real and generated batches in turn.
        """
        c = self.config
        z_batches = [
            tf.random.stateless_uniform([c.batch_size, c.latent_dim], seed=[c.seed, -2 - i], minval=-1.0, maxval=1.0)
            for i in range(batches)
        ]
        for g in {id(g): g for g in (self.generator, self.final_generator)}.values():
            with _cumulative_batch_norm(g) as advance:
                for z in z_batches:
                    advance()
                    g(z, training=True)
        inputs = []
        for real, z in zip(real_batches, z_batches):
            inputs += [real, self.final_generator(z, training=False)]
        with _cumulative_batch_norm(self.discriminator) as advance:
            for x in inputs:
                advance()
                self.discriminator(x, training=True)


class _cumulative_batch_norm:
    """Within the block, batch norm layers average their batch statistics with equal weights:
    call `advance()` before each batch."""

    def __init__(self, model: keras.Model):
        self.layers = [x for x in model.layers if isinstance(x, keras.layers.BatchNormalization)]  # direct children

    def __enter__(self):
        self.saved = [x.momentum for x in self.layers]
        self.count = 0

        def advance():
            for x in self.layers:
                x.momentum = self.count / (self.count + 1)
            self.count += 1

        return advance

    def __exit__(self, *exc):
        for x, m in zip(self.layers, self.saved):
            x.momentum = m


def restore_checkpoint(trainer: Trainer, path: str) -> None:
    """Restore a run's state. A checkpoint written before every weight was tracked
    (`generator_weights` missing) holds G's and D's trainable weights but not the EMA
    generator's up-convolutions: the average then restarts from G's current weights."""
    if any(name.startswith("generator_weights/") for name, _ in tf.train.list_variables(path)):
        trainer.checkpoint.restore(path).assert_existing_objects_matched()
        return
    trainer.checkpoint.restore(path).expect_partial()
    if trainer.ema_generator is not None:
        trainer.ema_generator.set_weights(trainer.generator.get_weights())
        warnings.warn(
            f"{path} was written by an older tfinpaint that did not save the EMA generator whole: "
            "the average restarts from G's current weights",
            stacklevel=2,
        )


def train(config: TrainConfig, strategy: tf.distribute.Strategy | None = None, verbose: int = 1) -> Trainer:
    """Train (or resume) the run in `config.run_dir` until `epochs` or `steps` is reached.

    Returns the `Trainer`, whose G and D are also saved in the run directory.

    Raises:
        TrainingError: a loss became NaN or Inf (the last good checkpoint is kept), or
            the run directory holds a run with incompatible settings.
        data.DataError: the dataset spec names nothing usable.
    """
    config = config.resolved()
    if not isinstance(config.dataset, str):
        config = dataclasses.replace(config, dataset=tuple(config.dataset))
    run_dir = Path(config.run_dir)
    check_resume(run_dir, config)
    source = data_lib.resolve(config.dataset, config.preprocess, config.holdout)
    trainer = Trainer(config, strategy)

    # Only the chief writes the run directory. The other workers of a multi-worker run take
    # part in every checkpoint save (it is a collective) but write to a temporary folder,
    # removed at the end; they resume from the chief's checkpoints.
    chief = is_chief(trainer.strategy)
    write_dir = run_dir if chief else Path(tempfile.mkdtemp(prefix="tfinpaint-worker-"))
    try:
        return _train(trainer, config, source, run_dir, write_dir, chief, verbose)
    finally:
        if not chief:
            shutil.rmtree(write_dir, ignore_errors=True)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run: always, except on a multi-worker cluster's
    non-chief workers (the chief is task `chief`, or worker 0 when there is none)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().jobs


def _train(trainer: Trainer, config: TrainConfig, source, run_dir: Path, write_dir: Path, chief: bool, verbose: int):
    base, count = data_lib.base_dataset(source, config.image_size, config.channels, config.data_dir)
    steps_per_epoch = count // config.batch_size
    if steps_per_epoch == 0:
        raise TrainingError(f"{count} training images are fewer than one batch of {config.batch_size}")
    total = config.steps if config.steps is not None else config.epochs * steps_per_epoch
    verbose = verbose if chief else 0
    if chief:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n")
        data_lib.write_list(run_dir / "heldout.txt", source.heldout)
    manager = tf.train.CheckpointManager(
        trainer.checkpoint, write_dir / "checkpoints", max_to_keep=config.keep_checkpoints
    )
    latest = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    if latest:
        restore_checkpoint(trainer, latest)
        # The checkpoint restores the optimizers' learning rates; this run's settings win.
        trainer.g_opt.learning_rate.assign(config.lr)
        trainer.d_opt.learning_rate.assign(config.lr)
        if verbose:
            print(f"Resuming {run_dir} at step {_step(trainer)}")
    elif config.init is not None:
        trainer.start_from(store.load_model(config.init))
        if verbose:
            print(f"Starting from {config.init}'s G and D")
    writer = tf.summary.create_file_writer(str(write_dir / "logs"))
    strategy = trainer.strategy
    t_start = time.perf_counter()
    seconds = _elapsed(run_dir, resumed=latest is not None)

    def save(step: int) -> None:
        manager.save(checkpoint_number=step)
        save_checkpoint_seconds(write_dir / "checkpoints", seconds + time.perf_counter() - t_start)

    def batches(epoch: int, skip: int, take: int):
        ds = data_lib.epoch_dataset(base, count, config.batch_size, epoch, config.seed).skip(skip)
        return strategy.experimental_distribute_dataset(ds.take(take))

    def after_step(step: int, losses: dict[str, float], rate: float) -> dict[str, float]:
        trainer.step.assign(step)
        if step % config.log_every == 0:
            with writer.as_default(step=step):
                for name, v in losses.items():
                    tf.summary.scalar(name, v)
                tf.summary.scalar("images_per_second", rate)
        if step % config.checkpoint_every == 0:
            save(step)
        return {"img/s": rate}

    def after_epoch(step: int) -> None:
        if step % config.checkpoint_every != 0:
            save(step)
        if step % steps_per_epoch == 0:  # a whole epoch: samples from the recalibrated G
            real = _real_batches(base, count, config)
            trainer.recalibrate(real)
            samples = trainer.samples()
            grid = images_lib.grid(samples, rows=8)
            # whether more epochs still buy detail: the samples' against the training images'
            sharp = metrics.relative_sharpness((samples + 1) / 2, (real[0].numpy() + 1) / 2)
            if chief:
                images_lib.save_png(run_dir / "samples" / f"epoch_{step // steps_per_epoch:03d}.png", grid)
            with writer.as_default(step=step):
                tf.summary.image("samples", grid[None], max_outputs=1)
                tf.summary.scalar("samples_sharpness", sharp)
            if verbose:
                detail = "1: as detailed; below, smoother; above, noisier"
                print(f"Samples' sharpness: {sharp:.2f} of the training images' ({detail})")

    loop = Loop(
        total,
        steps_per_epoch,
        batches,
        trainer.train_step,
        shown=("d_loss", "g_loss", "img/s"),
        title="Epoch",
        nan=lambda step, losses: (
            f"Loss became NaN or Inf at step {step} ({_fmt(losses)}); "
            f"the last good checkpoint in {run_dir / 'checkpoints'} is kept"
        ),
        batch_size=config.batch_size,
        verbose=verbose,
    )
    step = loop.run(_step(trainer), after_step, after_epoch)
    writer.flush()
    seconds += time.perf_counter() - t_start
    trainer.recalibrate(_real_batches(base, count, config))
    if chief:
        template = _face_template(base, config.channels, config.image_size)
        card = run_card(config, source, count, steps_per_epoch, step, seconds, template)
        _save_models(trainer, run_dir, card)
    return trainer


def _step(trainer: Trainer) -> int:
    """The step counter as an int (under a multi-worker strategy it is a MirroredVariable,
    which int() refuses)."""
    return int(trainer.step.numpy())


def _real_batches(base: tf.data.Dataset, count: int, config: TrainConfig, n: int = 16) -> list[tf.Tensor]:
    return list(data_lib.epoch_dataset(base, count, config.batch_size, epoch=-1, seed=config.seed, flip=False).take(n))


def _fmt(losses: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in losses.items())


def _elapsed(run_dir: Path, resumed: bool) -> float:
    """The training time before this session: kept beside the checkpoints, or for a run
    made before it was, its card's (which counts only the session that wrote it)."""
    kept = checkpoint_seconds(run_dir / "checkpoints") if resumed else None
    if kept is not None:
        return kept
    card = store.run_card(run_dir)
    return float(card.extra.get("training_seconds", 0.0)) if card else 0.0


def _face_template(base: tf.data.Dataset, channels: int, size: int, n: int = 256) -> faces.Template | None:
    """The landmark template of the first `n` training images as the model sees them, if
    they are faces (`faces.measure_template`); colour models of at least `faces.MIN_SIZE`
    pixels only (MTCNN's last stage looks at faces at 48x48)."""
    if channels != 3 or size < faces.MIN_SIZE:
        return None
    images = np.stack(list(base.take(n).as_numpy_iterator()))
    return faces.measure_template(images)


def _save_models(trainer: Trainer, run_dir: Path, card: store.ModelCard) -> None:
    # with an EMA, generator.keras is the average and the raw training weights are kept beside it
    more = {"generator_online": trainer.generator} if trainer.ema_generator is not None else {}
    store.save_run(run_dir, trainer.final_generator, trainer.discriminator, card, **more)
