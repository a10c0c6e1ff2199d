"""`tfinpaint`: train a DCGAN, fill holes in images, export for TF Serving.

Thin by design: options are parsed here, the work is done by the library. TensorFlow
is imported inside each command so `--help` answers at once.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import click

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def friendly_errors(fn):
    """Turn the library's expected failures into one-line errors instead of tracebacks."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            from tfinpaint._backend import BackendError

            expected: tuple[type[BaseException], ...] = (BackendError,)
            from tfinpaint.data import DataError
            from tfinpaint.train import TrainingError

            expected += (DataError, TrainingError)
        except Exception as e:  # the backend check itself failed on import
            raise click.ClickException(str(e)) from None
        try:
            return fn(*args, **kwargs)
        except expected as e:
            raise click.ClickException(str(e)) from None
        except KeyboardInterrupt:
            click.echo("\nInterrupted.", err=True)
            sys.exit(130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tfinpaint")
def main():
    """Semantic image inpainting with deep generative models (Yeh et al., 2016).

    Train a DCGAN on clean images (`train`), fill the holes of images by searching
    its latent space (`fill`), and export the model for TF Serving (`export`).
    """


@main.command("train", help="Train the paper's DCGAN; running it again resumes the run.")
@click.option("--dataset", required=True, help="TFDS name (celeb_a, celeba_a, svhn_cropped, ...), image folder or glob.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="TFDS data directory.")
@click.option("--preprocess", type=click.Choice(["celeba", "svhn", "square"]), default=None,
              help="celeba: centre square of 108/178 of the width; svhn: resize; square: largest centre square. "
                   "Default: by dataset.")
@click.option("--image-size", type=click.Choice(["32", "64", "128"]), default="64", show_default=True,
              help="Model image size.")
@click.option("--width", type=click.IntRange(min=1), default=64, show_default=True,
              help="Base channel width c (64 in the paper).")
@click.option("--latent-dim", type=click.IntRange(min=1), default=100, show_default=True, help="Size of z.")
@click.option("--channels", type=click.Choice(["3", "1"]), default="3", show_default=True, help="RGB or grayscale.")
@click.option("--no-batch-norm", is_flag=True, help="Train G and D without batch norm.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True, help="Global batch size.")
@click.option("--epochs", type=click.IntRange(min=1), default=25, show_default=True, help="Epochs in total.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Steps in total (overrides --epochs).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=2e-4, show_default=True,
              help="Adam learning rate.")
@click.option("--beta1", type=click.FloatRange(0, 1, max_open=True), default=0.5, show_default=True, help="Adam beta_1.")
@click.option("--g-steps", type=click.IntRange(min=1), default=1, show_default=True,
              help="Generator updates per discriminator update.")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Run directory: checkpoints, samples, logs, trained models.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--strategy", type=click.Choice(["default", "mirrored", "multiworker"]), default="default",
              show_default=True, help="tf.distribute strategy: one device, all local GPUs, or workers from TF_CONFIG.")
@click.option("--holdout", type=click.IntRange(min=0), default=None,
              help="Keep the first N images out of training (default: 2000 for CelebA, else 0).")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=500, show_default=True,
              help="Steps between checkpoints (one is also written at each epoch end).")
@click.option("--keep-checkpoints", type=click.IntRange(min=1), default=3, show_default=True,
              help="Checkpoints to keep.")
@friendly_errors
def train_command(no_batch_norm, image_size, channels, data_dir, run_dir, **options):
    from tfinpaint.train import TrainConfig, train

    config = TrainConfig(
        run_dir=str(run_dir),
        data_dir=str(data_dir) if data_dir else None,
        image_size=int(image_size),
        channels=int(channels),
        batch_norm=not no_batch_norm,
        **options,
    )
    train(config)
    click.echo(f"Trained models saved in {run_dir}")
