"""Training throughput of the paper's DCGAN (64x64, width 64, batch 64) and of the input pipeline.

    python benchmarks/train_throughput.py [--width 64] [--steps 20] [--ema 0.999] [--augment color,translation,cutout]

FLOPs per image count one D update and one G update: G forward, D forward on real and
fake and their backward passes (taken as twice the forward), then G forward, D forward
and backward, G backward: 4 F_G + 8 F_D for forward costs F_G and F_D.
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from _common import FACES, discriminator_flops, generator_flops, matmul_gflops, table  # noqa: E402

from tfinpaint import data  # noqa: E402
from tfinpaint.train import TrainConfig, Trainer  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--ema", type=float, default=0.0, help="EMA decay of G (0: off)")
    ap.add_argument("--augment", default="", help="DiffAugment policy, e.g. color,translation,cutout")
    args = ap.parse_args()

    config = TrainConfig(
        dataset=str(FACES),
        run_dir=tempfile.mkdtemp(),
        width=args.width,
        batch_size=args.batch_size,
        preprocess="celeba",
        holdout=0,
        ema=args.ema,
        augment=args.augment,
    )
    source = data.resolve(config.dataset, "celeba", 0)
    t = time.perf_counter()
    base, count = data.base_dataset(source, 64)
    first_pass = count / (time.perf_counter() - t)
    t, n = time.perf_counter(), 0
    for batch in data.epoch_dataset(base, count, args.batch_size, epoch=0, seed=0):
        n += int(batch.shape[0])
    cached = n / (time.perf_counter() - t)

    trainer = Trainer(config)
    batches = list(data.epoch_dataset(base, count, args.batch_size, epoch=0, seed=0).take(args.steps + 3))
    for i in range(3):
        trainer.train_step(batches[i], i)  # trace and warm up
    t = time.perf_counter()
    for i in range(args.steps):
        trainer.train_step(batches[3 + i], 3 + i)
    step_rate = args.steps * args.batch_size / (time.perf_counter() - t)

    flops = 4 * generator_flops(trainer.generator) + 8 * discriminator_flops(trainer.discriminator)
    ceiling = matmul_gflops()
    print(
        f"DCGAN 64x64, width {args.width}, batch {args.batch_size}, ema {args.ema or 'off'}, "
        f"augment {args.augment or 'off'}, {tf.config.list_physical_devices()[0].device_type}"
    )
    print(
        table(
            ("measure", "value"),
            [
                ("training images/s", f"{step_rate:.1f}"),
                ("GFLOPs per image (one D and one G update)", f"{flops / 1e9:.3f}"),
                ("GFLOP/s in training", f"{step_rate * flops / 1e9:.1f}"),
                ("4096^2 matmul GFLOP/s (ceiling)", f"{ceiling:.1f}"),
                ("share of the ceiling", f"{step_rate * flops / 1e9 / ceiling:.0%}"),
                ("pipeline images/s, first pass (decode, crop, resize)", f"{first_pass:.0f}"),
                ("pipeline images/s, cached epochs (shuffle, flip, batch)", f"{cached:.0f}"),
                ("pipeline / training, cached", f"{cached / step_rate:.0f}x"),
            ],
        )
    )


if __name__ == "__main__":
    main()
