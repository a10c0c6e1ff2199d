"""Where the time of one `tfinpaint fill` goes, and what it costs over importing TensorFlow.

1. End to end: `python -c "import tensorflow"` and `tfinpaint fill PHOTO --mask block`
   (each a fresh process, run in turn `--runs` times), medians and the difference (issue 14's
   target: under 2 s).
2. Stages, in a fresh process doing what the command does, one after another: importing
   TensorFlow, the rest of the package, loading the model, finding the face (MTCNN's first
   call loads its networks), the first search step (tracing), the rest of the search, the
   blend at the photo's resolution and writing the PNG.

    python benchmarks/fill_startup.py [--runs 5] [--model celeba64] [--photo examples/astronaut.png]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

STAGES = r"""
import time, sys
marks = [("start", time.perf_counter())]
def mark(name):
    marks.append((name, time.perf_counter()))
import tensorflow
mark("import TensorFlow")
import dataclasses
from tfinpaint import store, images, photos, views
from tfinpaint.search import inpaint
mark("import the rest")
model = store.load_model(sys.argv[1])
mark("load the model")
photo = photos.read(sys.argv[2], 0)
size, preprocess = model.image_size, model.preprocess
frames, _ = views.frames(photo.pixels, size, preprocess, model.card.face_template(), "auto", "all", "photo")
mark("find the face")
mask = views.photo_mask("block", 0, photo, frames, size, max_pixels=photo.pixels.size)
hole = views.assign_hole(mask, frames, "photo", preprocess)[0]
view = views.look(photo.pixels, mask, frames[0], size, hole)
settings = model.card.search_settings()
args = (view.image[None], view.mask[None], model.generator, model.discriminator)
inpaint(*args, settings, iterations=1, refine="none", blend=None, encoder=model.encoder)
mark("trace the search (1 step)")
result = inpaint(*args, settings, blend=None, encoder=model.encoder)
mark(f"search ({settings.iterations} iterations)")
filled = views.paste_back(photo.pixels, dataclasses.replace(view, generated=result.generated[0]))
mark("blend")
images.save_png(sys.argv[3], filled)
mark("write")
for (_, a), (name, b) in zip(marks, marks[1:]):
    print(f"{name:28s} {b - a:6.2f} s")
print(f"{'total':28s} {marks[-1][1] - marks[0][1]:6.2f} s")
"""


def timed(cmd: list[str], env: dict) -> float:
    tic = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - tic


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--model", default="celeba64")
    parser.add_argument("--photo", default=str(ROOT / "examples" / "astronaut.png"))
    args = parser.parse_args()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    tfinpaint = str(Path(sys.executable).parent / "tfinpaint")
    with tempfile.TemporaryDirectory() as out:
        fill = [tfinpaint, "fill", args.photo, "--mask", "block", "--model", args.model, "--out", out, "--overwrite"]
        bare, full = [], []
        for _ in range(args.runs):
            bare.append(timed([sys.executable, "-c", "import tensorflow"], env))
            full.append(timed(fill, env))
        b, f = statistics.median(bare), statistics.median(full)
        print(f"import tensorflow   median {b:5.2f} s  ({', '.join(f'{t:.2f}' for t in bare)})")
        print(f"tfinpaint fill      median {f:5.2f} s  ({', '.join(f'{t:.2f}' for t in full)})")
        print(f"fill - import       {f - b:5.2f} s  (target: under 2 s)\n")
        script = Path(out) / "stages.py"
        script.write_text(STAGES)
        subprocess.run(
            [sys.executable, str(script), args.model, args.photo, str(Path(out) / "s.png")],
            env=env,
            cwd=ROOT,
            check=True,
        )


if __name__ == "__main__":
    main()
