"""Two models' fills of the same held-out faces, side by side, as one picture.

    python tools/compare_fills.py --models celeba64 saved_models/celeba64_w64 \
        --faces ../shared/data/celeba_align_half/0000{33..38}.jpg --out docs/old_new_fills.jpg

Rows are faces; columns the face, its masked crop, then each model's result (the crop, twice
its size). Each model searches with its own card's settings unless `--iterations` is given.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfinpaint import fill as fill_lib  # noqa: E402
from tfinpaint import images as images_lib  # noqa: E402
from tfinpaint import store  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", required=True)
    ap.add_argument("--faces", nargs="+", type=Path, required=True)
    ap.add_argument("--mask", default="block")
    ap.add_argument("--iterations", type=int, default=None)
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    options = {"iterations": args.iterations} if args.iterations is not None else {}
    columns = []
    for k, spec in enumerate(args.models):
        model = store.load_model(spec)
        results = list(fill_lib.fill(args.faces, model, args.mask, align="off", **options))
        if k == 0:  # the face and its masked crop, from the first model's views
            crops = [r.photo.pixels[r.views[0].box.slices] for r in results]
            holes = [r.hole[r.views[0].box.slices] for r in results]
            columns += [crops, [np.where(h[..., None], 255, c).astype(np.uint8) for c, h in zip(crops, holes)]]
        columns.append([r.image[r.views[0].box.slices] for r in results])
    rows = []
    for k in range(len(args.faces)):
        h, w = columns[0][k].shape[:2]  # every cell at the face's crop size, times `scale`
        cells = [np.asarray(Image.fromarray(col[k]).resize((w * args.scale, h * args.scale))) for col in columns]
        rows.append(images_lib.side_by_side(cells))
    gap = np.full((4, rows[0].shape[1], 3), 255, np.uint8)
    picture = np.concatenate([part for row in rows for part in (row, gap)][:-1])
    Image.fromarray(picture).save(args.out, quality=90)
    names = ", ".join(f.name for f in args.faces)
    print(f"Wrote {args.out}: rows {names}; columns the face, masked, {', '.join(args.models)}")


if __name__ == "__main__":
    main()
