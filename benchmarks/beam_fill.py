"""Photos per second: `tfinpaint fill` in one process against the same command on Apache
Beam's DirectRunner with two worker processes, on the same real faces (the beam extra).

    python benchmarks/beam_fill.py [--photos 64] [--workers 2] [FILL OPTIONS ...]

Each command runs whole, as a user runs it (start-up, model loading, the fill, the writes);
both write byte-identical files, which the script checks. On a two-core machine the two are
close: one process already keeps both cores busy in TensorFlow's kernels.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "celeba_align_half"


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=False, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    args, fill_options = parser.parse_known_args()
    exe = shutil.which("tfinpaint") or sys.exit("tfinpaint is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "photos"
        photos.mkdir()
        for path in sorted(FACES.glob("*.jpg"))[200 : 200 + args.photos]:
            shutil.copy(path, photos / path.name)
        one = timed([exe, "fill", str(photos), "--out", f"{tmp}/one", *fill_options])
        workers = f"--direct_num_workers={args.workers} --direct_running_mode=multi_processing"
        beam = [exe, "fill", str(photos), "--out", f"{tmp}/beam", "--runner", "DirectRunner"]
        many = timed([*beam, "--pipeline-options", workers, *fill_options])
        same = all(
            (Path(tmp) / "beam" / p.name).read_bytes() == p.read_bytes() for p in (Path(tmp) / "one").glob("*.png")
        )
        n = len(list((Path(tmp) / "one").glob("*.png")))
    print(f"{n} photos ({' '.join(fill_options) or 'the model card defaults'}), whole commands:")
    print(f"  tfinpaint fill, one process:           {one:6.1f} s  {n / one:5.2f} photos/s")
    print(f"  --runner DirectRunner, {args.workers} workers:     {many:6.1f} s  {n / many:5.2f} photos/s")
    print(f"  byte-identical results: {same}")


if __name__ == "__main__":
    main()
