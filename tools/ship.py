"""Export a finished training run into saved_models/NAME with a complete model card.

    python tools/ship.py --run RUN_DIR --name celeba64 --data "..." --terms "..." \
        --command "tfinpaint train ..." --search '{"iterations": 1000}' --test-first 32 --test-count 64

The card gets: the data and its terms, the exact training command, epochs, steps and
training time (from the run), the sample grid of the last epoch (samples.png), and
held-out PSNR/SSIM for block, random 80% and half masks, measured by
`tfinpaint.evaluate` on held-out images the search defaults were not tuned on, beside a
mean-colour fill measured the same way.
"""

import argparse
import dataclasses
import json
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tfinpaint.evaluate import compare  # noqa: E402
from tfinpaint.export import export  # noqa: E402
from tfinpaint.search import SearchSettings  # noqa: E402
from tfinpaint.store import load_model, shipped_dir  # noqa: E402

SHIPPED = shipped_dir()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--data", help="what the model was trained on (default: --run's card, re-shipping an export)")
    ap.add_argument("--terms", help="the data's terms of use (default: --run's card)")
    ap.add_argument("--command", help="the exact training command (default: --run's card)")
    ap.add_argument("--masks", default="block,random,half,none", help="mask kinds scored on the card (evaluate's)")
    ap.add_argument("--search", default="{}", help="JSON of SearchSettings fields for the card")
    ap.add_argument("--test-first", type=int, default=32, help="first held-out image scored (earlier ones tuned)")
    ap.add_argument("--test-count", type=int, default=64)
    ap.add_argument("--methods", default="ours,mean,biharmonic", help="methods scored on the card (evaluate's)")
    args = ap.parse_args()

    settings = SearchSettings(**json.loads(args.search))
    run = load_model(args.run)
    files = run.card.heldout[args.test_first : args.test_first + args.test_count]
    if not Path(files[0]).exists():  # an export's card names its held-out files; they sit in its first folder
        folder = run.card.dataset_folders(SHIPPED.parent)[0]
        files = [str(folder / f) for f in files]
    scores = compare(
        run,
        files,
        args.masks.split(","),
        args.methods.split(","),
        settings=settings,
        progress=lambda s: print(s, flush=True),
    )
    # a run has its sample grids; an export being re-shipped (new settings, new scores) keeps its own
    samples = sorted((args.run / "samples").glob("epoch_*.png"))[-1:]
    base = SHIPPED / args.name
    card = run.card.extra
    extra = {
        "name": args.name,
        # relative to the repository, where `tfinpaint evaluate` looks for a shipped model's data
        "dataset": _relative(run.card.dataset),
        "data": args.data or card["data"],
        "terms": args.terms or card["terms"],
        "training_command": args.command or card["training_command"],
        "sample_grid": (
            f"samples.png (epoch {samples[0].stem.split('_')[1]}, 64 samples from a fixed z)"
            if samples
            else card["sample_grid"]
        ),
        "heldout": [Path(f).name for f in run.card.heldout],
        "heldout_scores_images": [Path(f).name for f in files],
        "heldout_scores": [dataclasses.asdict(s) for s in scores],
        "heldout_scores_note": (
            "PSNR (dB) and SSIM on [0, 1] at 64x64, after the model's preprocessing (tfinpaint.evaluate."
            "compare); 'ours' is the latent search with the card's search settings and Poisson blending; "
            "'ours-REFINE' the same search with that refinement after z ('ours-none': z alone); 'mean' "
            "fills the hole with the mean of the known pixels; 'biharmonic' is scikit-image's; 'ns' is "
            "OpenCV's Navier-Stokes inpainting. Random masks: 80% missing, seeded per image. Mask 'none': "
            "G(z) itself after the search (how closely G reproduces the image). detail_hole: the fill's "
            "mean absolute Laplacian in the hole over the original's (above 1: noisier). sharpness_hole: the "
            "median over images of the fill's mean squared Laplacian of grey levels in the hole eroded by 2 "
            "pixels, over the original's."
        ),
    }
    export(run, base, version=1, overwrite=True, settings=settings, card_extra=extra)
    if samples:
        shutil.copy(samples[0], base / "samples.png")
    for s in scores:
        print(f"{s.mask:7s} {s.method:12s} n={s.n}  PSNR {s.psnr:.2f}  SSIM {s.ssim:.3f}  hole box {s.psnr_box:.2f}")


def _relative(dataset):
    """Training folders relative to the repository, where evaluate looks for a shipped model's data."""
    if isinstance(dataset, str):
        return os.path.relpath(dataset, SHIPPED.parent)
    return [os.path.relpath(d, SHIPPED.parent) for d in dataset]


if __name__ == "__main__":
    main()
