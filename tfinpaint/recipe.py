"""What a training run is made of: its settings (`TrainConfig`, saved as the run's
`config.json` and checked when it resumes), the strategy it runs under, and the model card
its finished models are saved with."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import tensorflow as tf

from tfinpaint import data as data_lib
from tfinpaint import faces, store
from tfinpaint.constants import STRATEGIES
from tfinpaint.errors import TrainingError

# Settings that must not change when a run is resumed: they shape the weights or the data.
FIXED_ON_RESUME = (
    "dataset",
    "preprocess",
    "image_size",
    "width",
    "latent_dim",
    "channels",
    "batch_norm",
    "batch_size",
    "holdout",
    "seed",
    "ema",
    "init",
    "spectral_norm",
)

# The architecture: these defaults, or the --init model's when fine-tuning.
ARCHITECTURE = {"image_size": 64, "width": 64, "latent_dim": 100, "channels": 3, "batch_norm": True}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; saved as `config.json` in the run directory.

    Attributes:
        dataset: TFDS name (`celeb_a`, `celeba_a`, `svhn_cropped`, ...), folder or glob, or a
            tuple of folders and globs trained on together (held-out images from the first).
        run_dir: where checkpoints, samples, logs and the trained models go.
        data_dir: TFDS data directory (None: TFDS's default).
        preprocess: `celeba`, `svhn` or `square`; None: the init model's, else the dataset's default.
        image_size: 32, 64 or 128.
        width: the paper's c (64).
        latent_dim: size of z (100).
        channels: 3 or 1.
        batch_norm: batch norm in G and D as in DCGAN.
            (The five architecture settings: None means `ARCHITECTURE`'s default, or the
            init model's; given with `init`, they must agree with it.)
        batch_size: global batch size (64).
        epochs: epochs to train in total; ignored when `steps` is set.
        steps: total steps to train, if set.
        lr: Adam learning rate for G, and for D unless `d_lr` is set (2e-4).
        d_lr: D's learning rate if not `lr` (a two-time-scale rule, Heusel et al., 2017); None:
            `lr`, which `resolved` fills in.
        beta1: Adam beta_1 (0.5).
        g_steps: generator updates per discriminator update.
        seed: seeds z, shuffling, flips and initial weights.
        strategy: `default`, `mirrored` or `multiworker`.
        holdout: first N images kept out of training; None: dataset default.
        checkpoint_every: steps between checkpoints (also one at each epoch end).
        keep_checkpoints: how many checkpoints to keep.
        log_every: steps between TensorBoard scalar writes.
        ema: decay of an exponential moving average of G's weights, updated every step
            (0: off). When on, the averaged G is the one saved, sampled and filled with.
        augment: DiffAugment policy for D's inputs, e.g. "translation,cutout,color" ("" : off).
        init: a trained model (shipped name, run or export) whose G and D the run starts
            from, to fine-tune it on this dataset; the optimizers start afresh at step 0.
        loss: `bce`, the DCGAN's (D: cross-entropy; G: non-saturating -log D(G(z))), or
            `hinge` (D: relu(1 - D(x)) + relu(1 + D(G(z))); G: -D(G(z))).
        spectral_norm: spectral normalisation in D in place of its batch norm.
    """

    dataset: str | tuple[str, ...]
    run_dir: str
    data_dir: str | None = None
    preprocess: str | None = None
    image_size: int | None = None
    width: int | None = None
    latent_dim: int | None = None
    channels: int | None = None
    batch_norm: bool | None = None
    batch_size: int = 64
    epochs: int = 25
    steps: int | None = None
    lr: float = 2e-4
    beta1: float = 0.5
    g_steps: int = 1
    seed: int = 0
    strategy: str = "default"
    holdout: int | None = None
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    log_every: int = 10
    ema: float = 0.0
    augment: str = ""
    init: str | None = None
    d_lr: float | None = None
    loss: str = "bce"
    spectral_norm: bool = False

    def resolved(self) -> TrainConfig:
        """This config with the defaults filled in: the architecture's (or the init
        model's, checked against any given) and the dataset's preprocessing and holdout.

        Raises:
            TrainingError: a given architecture setting differs from the init model's.
            ModelError: the init model does not exist or its card is damaged.
        """
        arch, preprocess = dict(ARCHITECTURE), None
        if self.init is not None:
            _, card = store.load_card(self.init)
            arch = {k: getattr(card, k) for k in ARCHITECTURE}
            preprocess = card.preprocess
            for k, v in arch.items():
                given = getattr(self, k)
                if given is not None and given != v:
                    raise TrainingError(
                        f"`init={self.init}` has {k} {v!r}, not {given!r}: fine-tuning keeps the model's "
                        f"architecture (leave `{k}` out)"
                    )
        arch = {k: v if getattr(self, k) is None else getattr(self, k) for k, v in arch.items()}
        return dataclasses.replace(
            self,
            **arch,
            preprocess=self.preprocess or preprocess or data_lib.default_preprocess(self.dataset),
            holdout=data_lib.default_holdout(self.dataset) if self.holdout is None else self.holdout,
            d_lr=self.lr if self.d_lr is None else self.d_lr,
        )


def make_strategy(name: str) -> tf.distribute.Strategy:
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise TrainingError(f"Unknown strategy {name!r}; expected one of {STRATEGIES}")


def check_resume(run_dir: Path, config: TrainConfig) -> None:
    path = run_dir / "config.json"
    if not path.exists():
        return
    old = json.loads(path.read_text())
    new = json.loads(json.dumps(dataclasses.asdict(config)))  # tuples as JSON lists, as saved
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    changed = [
        f"{k}: {old.get(k, defaults[k])!r} -> {new[k]!r}" for k in FIXED_ON_RESUME if old.get(k, defaults[k]) != new[k]
    ]
    if changed:
        raise TrainingError(f"{run_dir} holds a run with other settings ({'; '.join(changed)}); use another `run_dir`")


def _dataset_record(dataset: str | tuple[str, ...], source) -> str | list[str]:
    if source.kind != "files":
        return dataset
    if isinstance(dataset, str):
        return os.path.abspath(dataset)
    return [os.path.abspath(d) for d in dataset]


def run_card(
    c: TrainConfig,
    source,
    count: int,
    steps_per_epoch: int,
    step: int,
    seconds: float,
    template: faces.Template | None = None,
) -> store.ModelCard:
    """The model card of a run trained with `c` on `source` (`count` images) to `step`."""
    return store.ModelCard(
        format=store.RUN_FORMAT,
        image_size=c.image_size,
        latent_dim=c.latent_dim,
        channels=c.channels,
        width=c.width,
        batch_norm=c.batch_norm,
        spectral_norm=c.spectral_norm,
        preprocess=c.preprocess,
        # folders as absolute paths, so evaluation finds them from anywhere
        dataset=_dataset_record(c.dataset, source),
        heldout=[os.path.abspath(f) for f in source.heldout] if source.kind == "files" else list(source.heldout),
        faces=template.to_dict() if template is not None else {},
        extra={
            "ema": c.ema,
            "augment": c.augment,
            "loss": c.loss,
            "d_lr": c.d_lr,
            **({"init": c.init} if c.init is not None else {}),
            "training_images": count,
            "batch_size": c.batch_size,
            "steps": step,
            "epochs": round(step / steps_per_epoch, 3),
            "training_seconds": round(seconds, 1),
        },
    )
