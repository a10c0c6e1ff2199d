"""`tfinpaint`: train a DCGAN, fill holes in images, export for TF Serving, evaluate.

Thin by design: options are parsed here, the work is done by the library, and the
results are printed. TensorFlow is imported inside each command so `--help` answers
at once; every expected failure (`tfinpaint.TfinpaintError`) is one line, no traceback;
an unexpected one is one line too, naming the log file that holds its traceback.

TensorFlow's native start-up lines (absl's "All log messages before
absl::InitializeLog()", CUDA probing on a machine without a GPU) are written to that log
instead of the terminal, unless `--verbose` is given or `TF_CPP_MIN_LOG_LEVEL` is set.
"""

from __future__ import annotations

import datetime
import functools
import math
import os
import re
import sys
import tempfile
import traceback
from pathlib import Path

import click

from tfinpaint import TfinpaintError, check_backend
from tfinpaint.constants import (
    ALIGNS,
    AUGMENT_POLICIES,
    BLENDS,
    EVAL_KINDS,
    EVAL_METHODS,
    FACES,
    IMAGE_SIZES,
    INITS,
    LOSSES,
    MASK_KINDS,
    MAX_PIXELS,
    PREPROCESS,
    REFINES,
    SIDES,
    STRATEGIES,
)
from tfinpaint.errors import MaskError, ModelError, first_line


class Finite(click.FloatRange):
    """Click's FloatRange that also refuses nan and inf (a range check lets nan through)."""

    name = "finite float"

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


# Seeds reach numpy's generators and TensorFlow's stateless ops, which take 0 ... 2^63 - 1.
SEED = click.IntRange(0, 2**63 - 1)

# Where unexpected errors' tracebacks and TensorFlow's start-up lines go.
LOG_DIR = Path(os.environ.get("TFINPAINT_LOG_DIR") or Path(tempfile.gettempdir()) / "tfinpaint-logs")


def _log_path(command: str) -> Path:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    return LOG_DIR / f"{command}-{datetime.datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}.log"


def _start_tensorflow(command: str, verbose: bool) -> None:
    """Import TensorFlow and create its devices with native stderr sent to a log file,
    unless asked for it (`--verbose`, or `TF_CPP_MIN_LOG_LEVEL` set by the user)."""
    if "tensorflow" in sys.modules or verbose or "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"  # then only warnings and errors after the start
    log = _log_path(command)
    sys.stderr.flush()
    terminal = os.dup(2)
    try:
        with open(log, "w") as f:
            os.dup2(f.fileno(), 2)
            import tensorflow as tf

            tf.config.list_physical_devices()
    finally:
        os.dup2(terminal, 2)
        os.close(terminal)
    log.unlink()


# How the library names a parameter in a message: `name` or `name=VALUE`.
_PARAMETER = re.compile(r"`([a-z_]+)(?:=([^`]*))?`")


def with_flags(message: str, command: click.Command | None = None) -> str:
    """A library message for the command line: the parameters it names (`max_pixels=N`)
    become the command's options (`--max-pixels N`); other names are left as they are."""
    command = command or click.get_current_context().command
    options = {}
    for param in command.params:
        if isinstance(param, click.Option):
            long = max(param.opts, key=len)
            options[param.name] = options[long.lstrip("-").replace("-", "_")] = param

    def flag(m: re.Match) -> str:
        param = options.get(m[1])
        if param is None:
            return m[0]
        long = max(param.opts, key=len)
        return long if param.is_flag or m[2] in (None, "True") else f"{long} {m[2]}"

    return _PARAMETER.sub(flag, message)


def friendly_errors(fn=None, *, check=None):
    """Run a command: expected failures and unexpected ones each become one line. `check`,
    called with the command's options before TensorFlow starts, refuses bad ones at once."""
    if fn is None:
        return functools.partial(friendly_errors, check=check)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        ctx = click.get_current_context()
        verbose = bool(ctx.find_root().params.get("verbose"))
        try:
            check_backend()
            if check is not None:
                check(**kwargs)
            _start_tensorflow(ctx.info_name, verbose)
            return fn(*args, **kwargs)
        except TfinpaintError as e:
            raise click.ClickException(with_flags(str(e), ctx.command)) from None
        except KeyboardInterrupt:
            click.echo("\nInterrupted.", err=True)
            sys.exit(130)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as e:
            if verbose:
                raise
            log = _log_path(ctx.info_name)
            log.write_text(traceback.format_exc())
            raise click.ClickException(
                f"Unexpected {type(e).__name__}: {first_line(e, 300)} (the full traceback is in {log}; "
                "run with --verbose to see it here)"
            ) from None

    return wrapper


def search_options(fn):
    """The latent-search options `fill`, `export` and `evaluate` share; None = the model card's."""
    options = [
        click.option(
            "--init",
            type=click.Choice(INITS),
            default=None,
            help="Start the search from the model's encoder's z or a random z; auto: the encoder if the model "
            "has one (default: the model's).",
        ),
        click.option(
            "--iterations", type=click.IntRange(min=0), default=None, help="Latent-search steps (default: the model's)."
        ),
        click.option(
            "--lam",
            type=Finite(min=0),
            default=None,
            help="Weight of the perceptual loss (default: the model's).",
        ),
        click.option(
            "--lr",
            type=Finite(min=0, min_open=True),
            default=None,
            help="Adam learning rate on z (default: the model's).",
        ),
        click.option(
            "--restarts",
            type=click.IntRange(min=1),
            default=None,
            help="Latents searched per image; the best is kept (default: the model's).",
        ),
        click.option(
            "--weighted/--unweighted",
            default=None,
            help="Weight the contextual loss by the missing pixels around each known one (default: the model's).",
        ),
        click.option(
            "--min-z-rms",
            type=Finite(min=0, max=1, max_open=True),
            default=None,
            help="Keep z's root-mean-square component at least this after every step (G's training z: 0.58); "
            "a longer z draws a less average, sharper face, at some PSNR; 0: off (default: the model's).",
        ),
        click.option(
            "--refine",
            type=click.Choice(REFINES),
            default=None,
            help="After the z search, fine-tune G's weights (generator) or its 8x8 activations (features) "
            "on each image (default: the model's).",
        ),
        click.option(
            "--refine-steps", type=click.IntRange(min=0), default=None, help="Steps of --refine (default: the model's)."
        ),
        click.option(
            "--refine-lr",
            type=Finite(min=0, min_open=True),
            default=None,
            help="Learning rate of --refine (default: the model's, or the refinement's own).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _check_model(model_spec=None, **_):
    """A model that is neither a shipped name nor a model folder, refused before TensorFlow starts."""
    from tfinpaint.locate import resolve

    resolve(model_spec)


def _check_init(init=None, **_):
    if init is not None:
        _check_model(init)


def _check_models(model_specs, **_):
    for spec in model_specs:
        _check_model(spec)


def _comma_list(value: str, choices: tuple[str, ...], param: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    for item in items:
        if item not in choices:
            raise click.BadParameter(f"unknown {item!r}; expected some of {', '.join(choices)}", param_hint=param)
    return items


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tfinpaint")
@click.option(
    "--verbose", is_flag=True, help="Show TensorFlow's native log lines and the traceback of unexpected errors."
)
def main(verbose):
    """Semantic image inpainting with deep generative models (Yeh et al., 2016).

    Train a DCGAN on clean images (`train`), fill the holes of images by searching
    its latent space (`fill`), export the model for TF Serving (`export`), compare
    with local methods (`evaluate`), or paint holes in a browser (`app`).
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
    type=click.Choice(PREPROCESS),
    default=None,
    help="celeba: centre square of 108/178 of the width; svhn: resize; square: largest centre square. "
    "Default: the --init model's, else by dataset.",
)
@click.option(
    "--image-size",
    type=click.Choice([str(s) for s in IMAGE_SIZES]),
    default=None,
    help="Model image size. Default: 64, or the --init model's.",
)
@click.option(
    "--width",
    type=click.IntRange(min=1),
    default=None,
    help="Base channel width c. Default: 64 as in the paper, or the --init model's.",
)
@click.option("--latent-dim", type=click.IntRange(min=1), default=None, help="Size of z. Default: 100, or --init's.")
@click.option(
    "--channels", type=click.Choice(["3", "1"]), default=None, help="RGB or grayscale. Default: 3, or --init's."
)
@click.option("--no-batch-norm", is_flag=True, help="Train G and D without batch norm.")
@click.option(
    "--init",
    default=None,
    help="Start from this trained model's G and D (a shipped name, a run or an export) and fine-tune it "
    "on --dataset; the architecture and preprocessing are the model's.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True, help="Global batch size.")
@click.option("--epochs", type=click.IntRange(min=1), default=25, show_default=True, help="Epochs in total.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Steps in total (overrides --epochs).")
@click.option("--lr", type=Finite(min=0, min_open=True), default=2e-4, show_default=True, help="Adam learning rate.")
@click.option("--beta1", type=Finite(0, 1, max_open=True), default=0.5, show_default=True, help="Adam beta_1.")
@click.option(
    "--d-lr",
    type=Finite(min=0, min_open=True),
    default=None,
    help="D's learning rate, if not --lr's (a two-time-scale rule, e.g. --lr 1e-4 --d-lr 4e-4).",
)
@click.option(
    "--loss",
    type=click.Choice(LOSSES),
    default="bce",
    show_default=True,
    help="GAN loss: bce, the DCGAN's cross-entropy (G: -log D(G(z))), or hinge.",
)
@click.option(
    "--spectral-norm",
    is_flag=True,
    help="Spectral normalisation of D's layers in place of its batch norm (Miyato et al., 2018).",
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
@click.option("--seed", type=SEED, default=0, show_default=True, help="Random seed.")
@click.option(
    "--strategy",
    type=click.Choice(STRATEGIES),
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
    type=Finite(0, 1, max_open=True),
    default=0.0,
    show_default=True,
    help="Decay of an exponential moving average of G's weights (e.g. 0.999); the average is the G saved. 0: off.",
)
@click.option(
    "--augment",
    default="",
    help="DiffAugment policy for D's inputs: comma-separated color, translation, cutout. Default: none.",
)
@friendly_errors(check=_check_init)
def train_command(no_batch_norm, image_size, channels, data_dir, run_dir, datasets, augment, **options):
    from tfinpaint.train import TrainConfig, is_chief, train

    _comma_list(augment, AUGMENT_POLICIES, "--augment")
    config = TrainConfig(
        dataset=datasets[0] if len(datasets) == 1 else tuple(datasets),
        augment=augment,
        run_dir=str(run_dir),
        data_dir=str(data_dir) if data_dir else None,
        image_size=int(image_size) if image_size else None,
        channels=int(channels) if channels else None,
        batch_norm=False if no_batch_norm else None,
        **options,
    )
    trainer = train(config)
    if is_chief(trainer.strategy):  # the other workers of a cluster write nothing
        click.echo(f"Trained models saved in {run_dir}")


@main.command(
    "train-encoder",
    help="Train the inpainting encoder of a trained model (its G and D stay as they are), so the "
    "search starts where G needs it; running it again resumes.",
)
@click.argument("model_spec", metavar="MODEL")
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the encoder goes (default: MODEL, if it is a run). For an export or a shipped model, a new "
    "run folder that gets its G and D too, for `tfinpaint export`.",
)
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    help="Training images (as for train). Default: the model card's, its held-out images left out.",
)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="TFDS data directory.")
@click.option("--width", type=click.IntRange(min=1), default=None, help="Encoder width. Default: the model's.")
@click.option("--steps", type=click.IntRange(min=1), default=4000, show_default=True, help="Steps in total.")
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=64, show_default=True, help="Samples and images per step."
)
@click.option("--lr", type=Finite(min=0, min_open=True), default=3e-4, show_default=True, help="Adam learning rate.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Random seed.")
@click.option(
    "--checkpoint-every", type=click.IntRange(min=1), default=250, show_default=True, help="Steps between checkpoints."
)
@friendly_errors(check=_check_model)
def train_encoder_command(model_spec, run_dir, datasets, data_dir, **options):
    from tfinpaint.encode import EncoderConfig, train_encoder

    config = EncoderConfig(
        model=model_spec,
        run_dir=str(run_dir) if run_dir else None,
        dataset=tuple(datasets) or None,
        data_dir=str(data_dir) if data_dir else None,
        **options,
    )
    click.echo(f"Encoder saved in {train_encoder(config)}")


def _check_fill(images, mask_spec, model_spec, max_pixels, runner=None, **_):
    """fill's cheap checks, before TensorFlow starts: the mask, the model, and (not on Beam,
    where each worker checks its photos) every photo: its file and header, its size for the
    model, its mask in a folder of masks (`photos.check`). The photos found and checked are
    passed on to the command, which does not check them again."""
    from tfinpaint import photos
    from tfinpaint.locate import geometry, resolve
    from tfinpaint.masks import check_spec

    for spec, what, error in ((model_spec, "model", ModelError), (mask_spec, "mask", MaskError)):
        if runner is None and "://" in str(spec or ""):
            raise error(f"A {what} at {spec} is read on Apache Beam only (--runner); copy it here to fill here")
    if "://" not in str(mask_spec):  # on Beam, each worker copies a remote mask (or model) itself
        check_spec(mask_spec)
    if "://" in str(model_spec or ""):
        return
    model = resolve(model_spec)
    shape = geometry(model)
    if runner is not None or shape is None:  # a card that store must read says what is wrong itself
        return
    found = photos.expand(images)
    photos.check(found, mask_spec, max_pixels, *shape)
    click.get_current_context().meta["tfinpaint.checked"] = found


@main.command(
    "fill",
    help="Fill the holes of images with the trained GAN (the paper's eqs. 2-6). IMAGES are files, folders "
    "(searched recursively; results keep their subfolders under --out) or quoted globs such as 'photos/**/*.jpg'.",
)
@click.argument("images", nargs=-1, required=True, type=click.Path())  # str: gs:// stays gs:// for Beam
@click.option(
    "--mask",
    "mask_spec",
    default="block",
    show_default=True,
    help=f"{', '.join(MASK_KINDS)}, a mask file (white = missing) or a folder of masks named like the images "
    "(with --runner also on gs:// or s3://).",
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
    type=Finite(0, 1),
    default=0.8,
    show_default=True,
    help="Share of pixels missing in the random mask.",
)
@click.option(
    "--side", type=click.Choice(SIDES), default="left", show_default=True, help="Missing half for the half mask."
)
@click.option(
    "--model",
    "model_spec",
    default=None,
    help="Training run directory, exported model directory, or a shipped model's name (default: celeba64); "
    "with --runner also a gs:// or s3:// folder.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=".",
    show_default=True,
    help="Output folder (created if missing).",
)
@search_options
@click.option(
    "--blend",
    type=click.Choice(BLENDS),
    default="poisson",
    show_default=True,
    help="Poisson blending (eq. 6) or plain overlay (eq. 5).",
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seeds the random masks and the initial latents.")
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=16, show_default=True, help="Images searched together."
)
@click.option(
    "--align",
    type=click.Choice(ALIGNS),
    default="auto",
    show_default=True,
    is_flag=False,
    flag_value="on",
    help="Face models: fill each face found, through a frame laid on its landmarks like the training faces' "
    "(--align alone: on). auto: unless the photo's one face already sits where the training faces do, "
    "or no face is found (then the centre crop is filled, with a warning). off: the centre crop.",
)
@click.option(
    "--face",
    type=click.Choice(FACES),
    default="all",
    show_default=True,
    help="With alignment: fill every face found, or the largest only.",
)
@click.option(
    "--panel",
    is_flag=True,
    help="Also write NAME_panel.png: original, masked input, G(z), result (aligned: the photo, then each face's "
    "view with its hole, its G(z) and the result around it).",
)
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=MAX_PIXELS,
    show_default=True,
    help="Refuse photos with more pixels than this (checked before any work).",
)
@click.option(
    "--runner",
    default=None,
    help="Fill on Apache Beam with this runner (DirectRunner, DataflowRunner, FlinkRunner, SparkRunner; "
    "needs the beam extra): IMAGES and --out may then be gs:// or s3:// paths too.",
)
@click.option(
    "--pipeline-options",
    default="",
    help="With --runner: Beam's pipeline options, quoted as one string, e.g. "
    "'--direct_num_workers=2 --direct_running_mode=multi_processing' or '--project P --region R ...'.",
)
@friendly_errors(check=_check_fill)
def fill_command(images, mask_spec, mask_invert, model_spec, out, runner, pipeline_options, **options):
    from tfinpaint import fill as fill_lib

    if runner is not None:
        return _fill_on_beam(images, mask_spec, mask_invert, model_spec, out, runner, pipeline_options, **options)
    if pipeline_options:
        raise click.UsageError("--pipeline-options goes with --runner")

    progress, failed, todo = _BatchProgress(), 0, 0
    checked = click.get_current_context().meta.get("tfinpaint.checked")  # by _check_fill, before TensorFlow
    photos = checked if checked is not None else images
    options.update(invert=mask_invert, progress=progress, checked=checked is not None)
    events = fill_lib.fill_into(photos, out, model_spec, mask_spec, **options)
    for event in events:
        progress.close()
        match event:
            case fill_lib.Found(total, done):
                todo = total - done
                if done:
                    skipping = f"Skipping {done} of {total} photos already filled in {out}"
                    click.echo(f"{skipping} (--overwrite fills them again)")
            case fill_lib.Failed(message=message):
                failed += 1
                click.echo(f"Error: {with_flags(message)}", err=True)
            case fill_lib.Warned(message):
                click.echo(f"Warning: {with_flags(message)}", err=True)
            case fill_lib.Written(path):
                click.echo(f"Wrote {path}")
            case fill_lib.Kept(path):
                click.echo(f"Kept {path}: it appeared while this photo was filled (--overwrite replaces it)")
    if failed and todo > 1:
        raise click.ClickException(f"{failed} of {todo} photos could not be filled (see above); the others were")
    if failed:
        click.get_current_context().exit(1)


def _fill_on_beam(images, mask_spec, mask_invert, model_spec, out, runner, pipeline_options, **options):
    import logging
    import shlex

    from tfinpaint import beam as beam_lib

    logging.basicConfig(format="%(message)s", level=logging.WARNING)
    for name in ("apache_beam.runners.portability.portable_runner", "apache_beam.runners.dataflow.dataflow_runner"):
        logging.getLogger(name).setLevel(logging.INFO)  # the job's state, and where to watch it
    logging.getLogger("apache_beam.ml.inference.base").setLevel(logging.ERROR)  # per-bundle memory notes
    args = ["--runner", runner, *shlex.split(pipeline_options)]
    click.echo(f"Filling on Apache Beam ({runner}) into {out}")
    counts = beam_lib.run(
        [str(i) for i in images], str(out), model_spec, mask_spec, pipeline_args=args, invert=mask_invert, **options
    )
    click.echo(
        f"Filled {counts.filled}, kept {counts.kept} (written meanwhile), skipped {counts.skipped} "
        f"(filled before), failed {counts.failed}"
    )
    if counts.failed:
        failures = f"{out}/{beam_lib.FAILURES}-*.jsonl"
        some = f"{counts.failed} photo{'s' if counts.failed > 1 else ''}"
        raise click.ClickException(f"{some} could not be filled: see {failures}; the others were")


class _BatchProgress:
    """A click progress bar for each batch's search, fed by `fill`'s progress callback."""

    def __init__(self):
        self.bar, self.label, self.done = None, None, 0

    def __call__(self, label: str, iteration: int, iterations: int, loss: float) -> None:
        if label != self.label:
            self.close()
            self.bar = click.progressbar(
                length=iterations,
                label=label,
                show_pos=True,
                item_show_func=lambda x: "" if x is None else f"loss {x:.2f}",
            )
            self.label, self.done = label, 0
        self.bar.update(iteration - self.done, loss)
        self.done = iteration

    def close(self) -> None:
        if self.bar is not None:
            self.bar.render_finish()
        self.bar, self.label = None, None


@main.command(
    "export", help="Export a trained model as a TF Serving model base path (OUT/<version>/ + OUT/model.json)."
)
@click.option(
    "--model",
    "model_spec",
    required=True,
    help="Training run directory, exported model directory, or a shipped model's name.",
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
    "--force",
    is_flag=True,
    help="Add the version even if the base path's other versions serve another model.",
)
@search_options
@friendly_errors(check=_check_model)
def export_command(model_spec, out, version, overwrite, force, **search):
    from tfinpaint.export import export
    from tfinpaint.store import load_model

    model = load_model(model_spec)
    settings = model.card.search_settings(**search)
    target = export(model, out, version=version, overwrite=overwrite, settings=settings, force=force)
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
    "--masks",
    "kinds",
    default="block,random,half,pattern",
    show_default=True,
    help=f"Comma-separated mask kinds: {', '.join(EVAL_KINDS)} (none: how closely G reproduces each image).",
)
@click.option(
    "--methods",
    default="ours,tv,telea,ns,biharmonic,lowrank,nearest",
    show_default=True,
    help=f"Comma-separated methods: {', '.join(EVAL_METHODS)} (mean: the known pixels' mean colour).",
)
@click.option("--n", "n", type=click.IntRange(min=1), default=200, show_default=True, help="Images to score.")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for results.md, results.csv, results.json and figure_MASK.png.",
)
@search_options
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seeds the random masks.")
@click.option(
    "--align",
    is_flag=True,
    help="Face models: score each photo's largest face in its own frame, as fill --align fills it "
    "(for photos not laid out like the training images).",
)
@friendly_errors(check=_check_model)
def evaluate_command(data_dir, model_spec, kinds, methods, n, out, seed, align, **search):
    from tfinpaint import evaluate as ev
    from tfinpaint.store import load_model

    kinds = _comma_list(kinds, EVAL_KINDS, "--masks")
    methods = _comma_list(methods, EVAL_METHODS, "--methods")
    if not data_dir.is_dir():
        raise click.ClickException(f"{data_dir} is not a folder of images")
    model = load_model(model_spec)
    files, note = ev.choose_images(data_dir, model, n)
    click.echo(f"Scoring {len(files)} {note}", err=note.startswith("WARNING"))
    settings = model.card.search_settings(**search)
    steps = len(kinds) * len(methods)
    with click.progressbar(length=steps, label="Evaluating", item_show_func=lambda s: s or "") as bar:
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
            align=align,
        )
    click.echo((out / "results.md").read_text())
    click.echo(f"Wrote {out / 'results.md'}, results.csv, results.json and {len(kinds)} figures")


def _check_port(host: str, port: int) -> None:
    """Refuse a port another program listens on, before the page is built (Gradio's own error
    is a traceback, after the models are loaded)."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        try:
            s.bind((host, port))
        except OSError as e:
            raise click.ClickException(
                f"Cannot listen on {host}:{port} ({e.strerror or e}); choose another port with --port"
            ) from None


@main.command("app", help="Serve a local web page: upload a photo, paint over the hole, watch it fill.")
@click.option(
    "--model",
    "model_specs",
    multiple=True,
    help="A shipped model's name, a run or an export folder; repeat to offer several (default: the shipped models).",
)
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True, help="Port to listen on.")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on: 127.0.0.1 is this machine only; 0.0.0.0 lets every machine that can reach "
    "this one fill photos with it.",
)
@friendly_errors(check=_check_models)
def app_command(model_specs, port, host):
    from tfinpaint import store
    from tfinpaint.locate import shipped_names

    try:
        from tfinpaint import app
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] not in ("gradio", "pandas"):
            raise
        raise click.ClickException(
            'tfinpaint app needs the app extra: pip install -e ".[app]" (or pip install "tfinpaint[app]")'
        ) from None
    _check_port(host, port)
    specs = list(model_specs) or shipped_names()
    for spec in specs:
        store.load_card(spec)  # a damaged model is a one-line error before the page starts
    click.echo(f"Serving tfinpaint on http://{host}:{port} (Ctrl+C stops it)")
    app.serve(specs, host, port)
