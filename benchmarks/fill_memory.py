"""Peak memory of `tfinpaint fill`, each case in its own process (the shipped model, CPU).

    python benchmarks/fill_memory.py                  # 12-megapixel photo; 10 and 1,000 photos
    python benchmarks/fill_memory.py --cases 12mp

Memory should follow the hole and the batch, not the photo or the number of photos: the
12-megapixel photo with a block mask is to fill in under 1.5 GB, and 1,000 photos in about
what 10 take. The photos are real faces (../shared/data/celeba_test_aligned, read in place;
the 12-megapixel one is a face upscaled to 4000x3000). Figures are ru_maxrss of the child.
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
TEST_FACES = ROOT.parent / "shared" / "data" / "celeba_test_aligned"


def run_fill(args: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of one `tfinpaint fill` in a fresh process."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "cli", "fill", *args], cwd=ROOT, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"tfinpaint fill {' '.join(args)} failed")
    return usage.ru_maxrss / 1024, time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="12mp,10,1000", help="12mp and/or numbers of photos")
    ap.add_argument("--iterations", type=int, default=5, help="search steps for the many-photo cases")
    args = ap.parse_args()
    faces = sorted(TEST_FACES.glob("*.jpg"))
    print(f"{'case':<34}{'peak RSS':>10}{'time':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for case in args.cases.split(","):
            out = tmp / f"out_{case}"
            if case == "12mp":
                photo = tmp / "photo_12mp.png"
                Image.open(faces[0]).convert("RGB").resize((4000, 3000), Image.BICUBIC).save(photo)
                peak, secs = run_fill([str(photo), "--mask", "block", "--out", str(out)])
                label = "12 MP photo, block, 300 iterations"
            else:
                count = int(case)
                folder = tmp / f"photos_{count}"
                folder.mkdir()
                for f in faces[:count]:
                    (folder / f.name).symlink_to(f)
                iters = str(args.iterations)
                peak, secs = run_fill([str(folder), "--mask", "block", "--iterations", iters, "--out", str(out)])
                label = f"{count} photos (a folder), {iters} iterations"
                assert len(list(out.glob("*_filled.png"))) == count
            print(f"{label:<34}{peak:>8.0f} MB{secs:>8.1f}s", flush=True)
    print(f"(this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; {np.__name__} only)")


if __name__ == "__main__":
    main()
