"""SHA-256 of every file that a set of `tfinpaint fill` commands writes: the safety net of a
refactor of the photo pipeline. Run it before and after a change, on one machine, and diff.

    python tools/fill_checksums.py > before.txt
    ... change the code ...
    python tools/fill_checksums.py > after.txt && diff before.txt after.txt

The commands cover the crop and the aligned face paths, every mask kind, a mask file and a
folder of masks, the overlay blend, a grayscale photo, a phone photo turned by its EXIF
orientation, a folder searched recursively, and the digits model. Inputs are made from the
examples and `../shared/data` (read in place) in a temporary folder.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
FACES = ROOT.parent / "shared" / "data" / "celeba_align_half"
DIGITS = ROOT.parent / "shared" / "data" / "svhn32"


def make_inputs(where: Path) -> None:
    """The photos and masks the commands read, made the same way every time."""
    faces = where / "faces"
    (faces / "sub").mkdir(parents=True)
    for k in range(1, 5):
        shutil.copy(FACES / f"{k:06d}.jpg", faces / f"{k:06d}.jpg")
    shutil.copy(FACES / "000005.jpg", faces / "sub" / "000005.jpg")
    Image.open(FACES / "000006.jpg").convert("L").save(faces / "gray.png")
    # a phone photo: stored turned a quarter, with EXIF orientation 8 (turn it back to show it)
    photo = Image.open(ROOT / "examples" / "astronaut_photo.jpg")
    exif = Image.Exif()
    exif[0x0112] = 8
    photo.transpose(Image.Transpose.ROTATE_270).save(where / "phone.jpg", quality=92, exif=exif)
    # a mask file for the 89x109 faces: white = missing, a slanted bar over the eyes
    mask = np.zeros((109, 89), np.uint8)
    for r in range(45, 60):
        mask[r, 22 + (r - 45) : 50 + (r - 45)] = 255
    Image.fromarray(mask).save(where / "bar.png")
    masks = where / "masks"
    masks.mkdir()
    for k in range(1, 5):
        m = np.zeros((109, 89), np.uint8)
        m[45 + 2 * k : 70, 25 : 50 + 4 * k] = 255
        Image.fromarray(m).save(masks / f"{k:06d}.png")
    digits = where / "digits"
    digits.mkdir()
    for k in range(3):
        shutil.copy(DIGITS / f"svhn_{k:05d}.png", digits / f"svhn_{k:05d}.png")


def commands(where: Path) -> dict[str, list[str]]:
    faces = [str(where / "faces" / f"{k:06d}.jpg") for k in range(1, 5)]
    astronaut = str(ROOT / "examples" / "astronaut_photo.jpg")
    return {
        "photo_block": [astronaut, "--mask", "block", "--panel"],
        "aligned_example": [str(ROOT / "examples" / "astronaut.png"), "--mask", "block", "--panel"],
        "phone_photo_on": [str(where / "phone.jpg"), "--mask", "half", "--align", "--panel"],
        "faces_random_off": [*faces, "--mask", "random", "--align", "off", "--panel", "--batch-size", "3"],
        "faces_half_on": [*faces[:2], "--mask", "half", "--side", "right", "--align", "on", "--panel"],
        "folder_pattern": [str(where / "faces"), "--mask", "pattern", "--batch-size", "4", "--panel"],
        "faces_overlay": [*faces[:2], "--mask", "block", "--block-size", "20", "--blend", "overlay"],
        "mask_file": [*faces[:2], "--mask", str(where / "bar.png"), "--panel"],
        "mask_folder": [*faces, "--mask", str(where / "masks"), "--align", "off"],
        "refine_features": [faces[0], "--mask", "random", "--missing", "0.5", "--refine", "features"],
        "digits": [str(where / "digits"), "--model", "svhn64", "--mask", "block", "--panel"],
        "house_number": [str(ROOT / "examples" / "house_number.png"), "--model", "svhn64", "--mask", "random"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="run only these commands (by name)")
    parser.add_argument("--keep", type=Path, help="keep the outputs in this folder")
    args = parser.parse_args()
    exe = shutil.which("tfinpaint") or sys.exit("tfinpaint is not installed (pip install -e .)")
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        make_inputs(where)
        for name, argv in commands(where).items():
            if args.only and name not in args.only:
                continue
            out = (args.keep or where / "out") / name
            run = subprocess.run([exe, "fill", *argv, "--out", str(out)], capture_output=True, text=True)
            print(f"# {name}: exit {run.returncode}")
            for line in run.stderr.splitlines():
                if line.startswith(("Error", "Warning")):
                    print(f"#   {line.replace(tmp, 'TMP')}")
            for path in sorted(out.rglob("*")) if out.exists() else []:
                if path.is_file():
                    digest = hashlib.sha256(path.read_bytes()).hexdigest()
                    print(f"{digest}  {name}/{path.relative_to(out)}")
            sys.stdout.flush()


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
