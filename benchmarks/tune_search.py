"""Choose the latent search's defaults on a validation split: PSNR, SSIM and sharpness per setting.

    python benchmarks/tune_search.py --model /path/to/run --first 1 --count 64 [--masks block,random]

The validation images are held-out files of the model's run (its model card lists
them): `--first` and `--count` pick a slice of that list. Each row changes one
setting from the base (`--base key=value,...`).
"""

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import table  # noqa: E402

from tfinpaint import (
    refine,  # noqa: E402
    store,  # noqa: E402
)
from tfinpaint.evaluate import compare  # noqa: E402
from tfinpaint.refine import FEATURE_DEPTH  # noqa: E402
from tfinpaint.settings import SearchSettings  # noqa: E402
from tfinpaint.store import load_model  # noqa: E402

GRID = [
    {},
    {"lr": 0.01},
    {"lr": 0.1},
    {"weighted": False},
    {"lam": 0.0},
    {"lam": 0.1},
    {"iterations": 300},
    {"iterations": 2000},
    {"restarts": 4},
]


def parse(text: str) -> dict:
    """`key=value,...` to SearchSettings fields, each as the type of its default."""
    defaults = SearchSettings()
    out = {}
    for item in filter(None, text.split(",")):
        k, v = item.split("=")
        default = getattr(defaults, k)
        if isinstance(default, bool):
            out[k] = v == "True"
        elif isinstance(default, (int, str)):
            out[k] = type(default)(v)
        else:  # floats, and refine_lr (None by default)
            out[k] = float(v)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--first", type=int, default=0, help="index into the held-out list")
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--masks", default="block,random")
    ap.add_argument("--base", default="", help="base settings, e.g. iterations=1000,lr=0.03")
    ap.add_argument("--grid", default=None, help="rows as JSON, e.g. '[{}, {\"restarts\": 3}]' (default: GRID)")
    args = ap.parse_args()
    model = load_model(args.model)
    folder = model.card.dataset_folders(store.shipped_dir().parent if model.shipped else None)[0]
    files = [str(folder / f) for f in model.card.heldout[args.first : args.first + args.count]]
    base = SearchSettings(**parse(args.base))
    rows = []
    kinds = args.masks.split(",")

    def cells(scores, method):
        # one cell per mask kind; a method that has no score for a kind (no baseline fills "none") gets ""
        score = {s.mask: s for s in scores if s.method == method}
        return [
            f"{s.psnr:.2f} / {s.ssim:.3f} / {s.psnr_box:.2f} / {s.sharpness_hole:.2f}" if s else ""
            for s in (score.get(k) for k in kinds)
        ]

    for change in json.loads(args.grid) if args.grid else GRID:
        change = dict(change)
        refine.FEATURE_DEPTH = change.pop("feature_depth", FEATURE_DEPTH)  # a constant of the library
        settings = SearchSettings(**{**base.__dict__, **change})
        t = time.perf_counter()
        scores = compare(model, files, kinds, ("ours",), settings=settings)
        took = time.perf_counter() - t
        label = ", ".join(f"{k}={v}" for k, v in change.items())
        if refine.FEATURE_DEPTH != FEATURE_DEPTH:
            label += f", feature_depth={refine.FEATURE_DEPTH}"
        rows.append((label or "base", *cells(scores, "ours"), f"{took:.0f}"))
        print(rows[-1], flush=True)
    scores = compare(model, files, kinds, ("mean", "biharmonic"), settings=base)
    rows += [("mean colour fill", *cells(scores, "mean"), ""), ("biharmonic", *cells(scores, "biharmonic"), "")]
    print(f"\n{len(files)} held-out images ({Path(files[0]).name} ...), base: {base}")
    heads = [f"{k} PSNR / SSIM / PSNR in the hole's box / sharpness in the hole" for k in args.masks.split(",")]
    print(table(("change", *heads, "seconds"), rows))


if __name__ == "__main__":
    main()
