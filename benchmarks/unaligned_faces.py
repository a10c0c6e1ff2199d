"""Faces in the wild, measured: alignment error, fill quality against the aligned originals,
detector speed, and the whole fill of a 12-megapixel photo (the shipped model, CPU).

    python benchmarks/unaligned_faces.py                 # 64 faces, block mask
    python benchmarks/unaligned_faces.py --masks block,random,half --n 16

Each held-out face (000033-000096 of ../shared/data/celeba_align_half, read in place; held
out of the shipped models' training and of the search's tuning) is pasted into one of
scikit-image's sample photos (rocket, coffee) at a random scale (1.5-3.5x), angle (within
30 degrees either way) and place. `evaluate --align` then scores the filled faces in the
frames found for them, beside the same faces scored in their original aligned form (the
model's plain centre crop): the two PSNRs are to be within 0.5 dB.

The alignment error is the root mean square distance, over the five template landmarks and
as a fraction of the frame's side, between the frame found in the pasted photo and the one
found on the face's own aligned image (carried into the photo): detector jitter under
scaling and rotation.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import skimage.data
from _common import FACES, ROOT, table
from PIL import Image

sys.path.insert(0, str(ROOT / "tests"))

from synthetic import carry, frame_error, paste_face  # noqa: E402

from tfinpaint import evaluate, faces, fill, store  # noqa: E402


def synthetic(files: list[Path], folder: Path, seed: int = 0) -> list[float]:
    """Write each face pasted into a sample photo to `folder`; returns the alignment errors."""
    rng = np.random.default_rng(seed)
    backgrounds = [skimage.data.rocket(), skimage.data.coffee()]
    template = store.load_card("celeba64")[1].face_template()
    errors = []
    for k, f in enumerate(files):
        face = np.asarray(Image.open(f).convert("RGB"))
        background = backgrounds[k % 2]
        scale, angle = rng.uniform(1.5, 3.5), rng.uniform(-30, 30)
        half = scale * np.hypot(*face.shape[:2]) / 2
        h, w = background.shape[:2]
        centre = (rng.uniform(half, w - half), rng.uniform(min(half, h / 2), max(h - half, h / 2)))
        photo, to_face = paste_face(face, background, scale, angle, centre)
        Image.fromarray(photo).save(folder / f"{Path(f).stem}.png")
        found, own = faces.detector()(photo), faces.detector()(face)
        if found and own:
            errors.append(
                frame_error(
                    faces.Frame.on_face(found[0], template),
                    carry(faces.Frame.on_face(own[0], template), to_face),
                    template,
                )
            )
    return errors


def detector_speed(folder: Path) -> tuple[float, float]:
    """Median seconds per photo for the synthetic photos, and for a 12-megapixel one."""
    photos = [np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))[:16]]
    faces.detector()(photos[0])  # load and trace
    times = []
    for p in photos:
        t = time.perf_counter()
        faces.detector()(p)
        times.append(time.perf_counter() - t)
    big = np.asarray(Image.fromarray(photos[0]).resize((4000, 3000), Image.BICUBIC))
    t = time.perf_counter()
    faces.detector()(big)
    return float(np.median(times)), time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--masks", default="block")
    ap.add_argument("--model", default="celeba64")
    args = ap.parse_args()
    model = store.load_model(args.model)
    files = [FACES / f"{i:06d}.jpg" for i in range(33, 33 + args.n)]
    kinds = args.masks.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        errors = synthetic(files, folder)
        print(
            f"alignment error over {len(errors)} faces (fraction of the frame's side): median {np.median(errors):.4f}, "
            f"90% {np.percentile(errors, 90):.4f}, max {np.max(errors):.4f}"
        )
        aligned = evaluate.compare(model, sorted(folder.glob("*.png")), kinds, ["ours"], align=True)
        plain = evaluate.compare(model, files, kinds, ["ours"])
        rows = [
            (a.mask, a.n, f"{p.psnr:.2f}", f"{a.psnr:.2f}", f"{a.psnr - p.psnr:+.2f}", f"{p.ssim:.3f}", f"{a.ssim:.3f}")
            for a, p in zip(aligned, plain)
        ]
        header = ("mask", "n", "PSNR, aligned originals", "PSNR, pasted with --align", "difference", "SSIM", "SSIM")
        print(table(header, rows))
        per_photo, twelve = detector_speed(folder)
        print(f"detector: {per_photo:.2f} s per photo of about 640x427 (median of 16), {twelve:.2f} s at 4000x3000")
        big = np.asarray(Image.open(sorted(folder.glob("*.png"))[0]).resize((4000, 3000), Image.BICUBIC))
        t = time.perf_counter()
        (result,) = fill.fill([big], model, "block", align="on")
        print(
            f"whole fill of a 4000x3000 photo (block, the card's search, Poisson): {time.perf_counter() - t:.1f} s "
            f"(its face's frame spans {result.views[0].frame.side:.0f} pixels)"
        )


if __name__ == "__main__":
    main()
