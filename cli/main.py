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
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def friendly_errors(fn):
    """Turn the library's expected failures into one-line errors instead of tracebacks."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            from tfinpaint._backend import BackendError

            expected: tuple[type[BaseException], ...] = (BackendError,)
            from tfinpaint.data import DataError
            from tfinpaint.export import ExportError
            from tfinpaint.fill import ModelError
            from tfinpaint.masks import MaskError
            from tfinpaint.train import TrainingError

            expected += (DataError, ExportError, MaskError, ModelError, TrainingError)
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


def _progress_to(bar):
    """A callback for `inpaint` that moves a click progress bar to iteration `it`."""
    done = 0

    def progress(it: int, loss: float) -> None:
        nonlocal done
        bar.update(it - done, loss)
        done = it

    return progress


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tfinpaint")
def main():
    """Semantic image inpainting with deep generative models (Yeh et al., 2016).

    Train a DCGAN on clean images (`train`), fill the holes of images by searching
    its latent space (`fill`), and export the model for TF Serving (`export`).
    """


@main.command("train", help="Train the paper's DCGAN; running it again resumes the run.")
@click.option(
    "--dataset",
    "datasets",
    required=True,
    multiple=True,
    help="TFDS name (celeb_a, celeba_a, svhn_cropped, ...), image folder or glob. Several folders or globs "
    "(repeat the option) are trained on together; the held-out images come from the first.",
)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="TFDS data directory.")
@click.option(
    "--preprocess",
    type=click.Choice(["celeba", "svhn", "square"]),
    default=None,
    help="celeba: centre square of 108/178 of the width; svhn: resize; square: largest centre square. "
    "Default: by dataset.",
)
@click.option(
    "--image-size", type=click.Choice(["32", "64", "128"]), default="64", show_default=True, help="Model image size."
)
@click.option(
    "--width", type=click.IntRange(min=1), default=64, show_default=True, help="Base channel width c (64 in the paper)."
)
@click.option("--latent-dim", type=click.IntRange(min=1), default=100, show_default=True, help="Size of z.")
@click.option("--channels", type=click.Choice(["3", "1"]), default="3", show_default=True, help="RGB or grayscale.")
@click.option("--no-batch-norm", is_flag=True, help="Train G and D without batch norm.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True, help="Global batch size.")
@click.option("--epochs", type=click.IntRange(min=1), default=25, show_default=True, help="Epochs in total.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Steps in total (overrides --epochs).")
@click.option(
    "--lr", type=click.FloatRange(min=0, min_open=True), default=2e-4, show_default=True, help="Adam learning rate."
)
@click.option(
    "--beta1", type=click.FloatRange(0, 1, max_open=True), default=0.5, show_default=True, help="Adam beta_1."
)
@click.option(
    "--g-steps",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Generator updates per discriminator update.",
)
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Run directory: checkpoints, samples, logs, trained models.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option(
    "--strategy",
    type=click.Choice(["default", "mirrored", "multiworker"]),
    default="default",
    show_default=True,
    help="tf.distribute strategy: one device, all local GPUs, or workers from TF_CONFIG.",
)
@click.option(
    "--holdout",
    type=click.IntRange(min=0),
    default=None,
    help="Keep the first N images out of training (default: 2000 for CelebA, else 0).",
)
@click.option(
    "--checkpoint-every",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Steps between checkpoints (one is also written at each epoch end).",
)
@click.option(
    "--keep-checkpoints", type=click.IntRange(min=1), default=3, show_default=True, help="Checkpoints to keep."
)
@click.option(
    "--ema",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    show_default=True,
    help="Decay of an exponential moving average of G's weights (e.g. 0.999); the average is the G saved. 0: off.",
)
@click.option(
    "--augment",
    default="",
    help="DiffAugment policy for D's inputs: comma-separated color, translation, cutout. Default: none.",
)
@friendly_errors
def train_command(no_batch_norm, image_size, channels, data_dir, run_dir, datasets, augment, **options):
    from tfinpaint.augment import parse_policy
    from tfinpaint.train import TrainConfig, train

    try:
        parse_policy(augment)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--augment") from None
    config = TrainConfig(
        dataset=datasets[0] if len(datasets) == 1 else tuple(datasets),
        augment=augment,
        run_dir=str(run_dir),
        data_dir=str(data_dir) if data_dir else None,
        image_size=int(image_size),
        channels=int(channels),
        batch_norm=not no_batch_norm,
        **options,
    )
    train(config)
    click.echo(f"Trained models saved in {run_dir}")


@main.command("fill", help="Fill the holes of images with the trained GAN (the paper's eqs. 2-6).")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--mask",
    "mask_spec",
    default="block",
    show_default=True,
    help="block, random, half, pattern, a mask file (white = missing) or a folder of masks named like the images.",
)
@click.option("--mask-invert", is_flag=True, help="Mask files: black = missing instead of white.")
@click.option(
    "--block-size",
    type=click.IntRange(min=1),
    default=None,
    help="Side of the block mask in model pixels (default: half the model's size).",
)
@click.option(
    "--missing",
    type=click.FloatRange(0, 1),
    default=0.8,
    show_default=True,
    help="Share of pixels missing in the random mask.",
)
@click.option(
    "--side",
    type=click.Choice(["left", "right", "top", "bottom"]),
    default="left",
    show_default=True,
    help="Missing half for the half mask.",
)
@click.option(
    "--model",
    "model_spec",
    default=None,
    help="Training run directory, exported model directory, or a shipped model's name (default: celeba64).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Output folder (created if missing).",
)
@click.option(
    "--iterations", type=click.IntRange(min=0), default=None, help="Latent-search steps (default: the model's)."
)
@click.option(
    "--lam", type=click.FloatRange(min=0), default=None, help="Weight of the perceptual loss (default: the model's)."
)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Adam learning rate on z (default: the model's).",
)
@click.option(
    "--restarts",
    type=click.IntRange(min=1),
    default=None,
    help="Latents searched per image; the best is kept (default: the model's).",
)
@click.option(
    "--weighted/--unweighted",
    default=None,
    help="Weight the contextual loss by the missing pixels around each known one (default: the model's).",
)
@click.option(
    "--blend",
    type=click.Choice(["poisson", "overlay"]),
    default="poisson",
    show_default=True,
    help="Poisson blending (eq. 6) or plain overlay (eq. 5).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the random masks and the initial latents.")
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=16, show_default=True, help="Images searched together."
)
@click.option("--panel", is_flag=True, help="Also write NAME_panel.png: original, masked input, G(z), result.")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@friendly_errors
def fill_command(
    images,
    mask_spec,
    mask_invert,
    block_size,
    missing,
    side,
    model_spec,
    out,
    blend,
    seed,
    batch_size,
    panel,
    overwrite,
    **search,
):
    from tfinpaint import fill as fill_lib
    from tfinpaint.data import load_image_file
    from tfinpaint.inpaint import inpaint

    outputs = [(out / f"{p.stem}_filled.png", out / f"{p.stem}_panel.png") for p in images]
    names = [o[0].name for o in outputs]
    if len(set(names)) != len(names):
        raise click.BadParameter("two images share a name; their outputs would collide", param_hint="IMAGES")
    if not overwrite:
        for filled, pan in outputs:
            for target in (filled, pan) if panel else (filled,):
                if target.exists():
                    raise click.ClickException(f"{target} exists; pass --overwrite to replace it")
    photos = []
    for p in images:
        if not p.is_file():
            raise click.ClickException(f"Cannot read image {p}: no such file")
        photos.append(load_image_file(p))
    model = fill_lib.load_model(model_spec)
    size, preprocess = model.image_size, model.preprocess
    photo_masks = fill_lib.masks_for(
        mask_spec,
        list(images),
        [ph.shape[:2] for ph in photos],
        preprocess,
        size,
        seed=seed,
        invert=mask_invert,
        block_size=block_size,
        missing=missing,
        side=side,
    )
    prepared = [fill_lib.prepare(ph, m, preprocess, size, str(p)) for ph, m, p in zip(photos, photo_masks, images)]
    settings = fill_lib.search_settings(model.card, **search, seed=seed)
    for start in range(0, len(prepared), batch_size):
        batch = prepared[start : start + batch_size]
        label = f"Filling {start + 1}-{start + len(batch)} of {len(prepared)}"
        with click.progressbar(
            length=settings.iterations,
            label=label,
            show_pos=True,
            item_show_func=lambda loss: f"loss {loss:.2f}" if loss is not None else "",
        ) as bar:
            result = inpaint(
                np.stack([b.model_image for b in batch]),
                np.stack([b.model_mask for b in batch]),
                model.generator,
                model.discriminator,
                settings,
                blend="overlay",
                progress=_progress_to(bar),
            )
        for k, prep in enumerate(batch):
            filled_path, panel_path = outputs[start + k]
            filled = fill_lib.paste_back(prep, result.generated[k], blend)
            fill_lib.save_image(filled_path, filled)
            click.echo(f"Wrote {filled_path}")
            if panel:
                fill_lib.save_image(panel_path, fill_lib.panel(prep, result.generated[k], filled))
                click.echo(f"Wrote {panel_path}")


@main.command(
    "export", help="Export a trained model as a TF Serving model base path (OUT/<version>/ + OUT/model.json)."
)
@click.option(
    "--model",
    "run_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Training run directory (from `tfinpaint train`).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Model base path, e.g. saved_models/NAME.",
)
@click.option(
    "--version", "version", type=click.IntRange(min=1), default=1, show_default=True, help="Version folder to write."
)
@click.option("--overwrite", is_flag=True, help="Replace an existing version.")
@click.option(
    "--iterations",
    type=click.IntRange(min=0),
    default=None,
    help="Default search steps of serving_default (default: the run's or the library's).",
)
@click.option("--lam", type=click.FloatRange(min=0), default=None, help="Default perceptual weight.")
@click.option("--restarts", type=click.IntRange(min=1), default=None, help="Default restarts.")
@friendly_errors
def export_command(run_dir, out, version, overwrite, **search):
    from tfinpaint.export import export
    from tfinpaint.fill import search_settings
    from tfinpaint.train import load_run

    if not run_dir.exists():
        raise click.ClickException(f"Model {run_dir} does not exist")
    _, _, card = load_run(run_dir)
    settings = search_settings(card, **search)
    target = export(run_dir, out, version=version, overwrite=overwrite, settings=settings)
    click.echo(f"Wrote {target} (signatures: serving_default, inpaint, generate, discriminate)")


@main.command("evaluate", help="Compare our inpainting with local methods on a folder of images (the paper's figures).")
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder of images; if it is the model's training folder, only its held-out images are used.",
)
@click.option("--model", "model_spec", default=None, help="Run directory, export, or shipped model name.")
@click.option(
    "--masks", "kinds", default="block,random,half,pattern", show_default=True, help="Comma-separated mask kinds."
)
@click.option(
    "--methods",
    default="ours,tv,telea,ns,biharmonic,lowrank,nearest",
    show_default=True,
    help="Comma-separated methods: ours, tv, telea, ns, biharmonic, lowrank, nearest.",
)
@click.option("--n", "n", type=click.IntRange(min=1), default=200, show_default=True, help="Images to score.")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for results.md, results.csv, results.json and figure_MASK.png.",
)
@click.option("--iterations", type=click.IntRange(min=0), default=None, help="Search steps (default: the model's).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the random masks.")
@friendly_errors
def evaluate_command(data_dir, model_spec, kinds, methods, n, out, iterations, seed):
    from tfinpaint import evaluate as ev
    from tfinpaint import masks as masks_lib
    from tfinpaint.baselines import MissingDependency
    from tfinpaint.fill import load_model, search_settings

    kinds = [k.strip() for k in kinds.split(",") if k.strip()]
    methods = [m.strip() for m in methods.split(",") if m.strip()]
    for k in kinds:
        if k not in masks_lib.KINDS:
            raise click.BadParameter(
                f"unknown mask kind {k!r}; expected some of {masks_lib.KINDS}", param_hint="--masks"
            )
    for m in methods:
        if m not in ev.METHODS:
            raise click.BadParameter(f"unknown method {m!r}; expected some of {ev.METHODS}", param_hint="--methods")
    if not data_dir.is_dir():
        raise click.ClickException(f"{data_dir} is not a folder of images")
    model = load_model(model_spec)
    files, note = ev.choose_images(data_dir, model, n)
    click.echo(f"Scoring {len(files)} {note}", err=note.startswith("WARNING"))
    settings = search_settings(model.card, iterations=iterations)
    steps = len(kinds) * len(methods)
    with click.progressbar(length=steps, label="Evaluating", item_show_func=lambda s: s or "") as bar:
        try:
            ev.compare(
                model,
                files,
                kinds,
                methods,
                out,
                seed=seed,
                settings=settings,
                note=note,
                progress=lambda what: bar.update(1, what),
            )
        except MissingDependency as e:
            raise click.ClickException(str(e)) from None
    click.echo((out / "results.md").read_text())
    click.echo(f"Wrote {out / 'results.md'}, results.csv, results.json and {len(kinds)} figures")
