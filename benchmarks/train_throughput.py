"""Training throughput of the paper's DCGAN (64x64, width 64, batch 64) and of the input pipeline.

    python benchmarks/train_throughput.py [--width 64] [--steps 20] [--ema 0.999] [--augment color,translation,cutout]

FLOPs per image count one D update and one G update: G forward, D forward on real and
fake and their backward passes (taken as twice the forward), then D forward and backward
on the same generated batch and G backward: 3 F_G + 8 F_D for forward costs F_G and F_D
(G's forward pass is reused by its update, as in pytorch/examples).

With torch installed (it is not a dependency), the same DCGAN and step in PyTorch
(benchmarks/_torch_dcgan.py) run in the same process and the ratio is printed.
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import FACES, discriminator_flops, generator_flops, matmul_gflops, table  # noqa: E402, I001

import tensorflow as tf  # noqa: E402

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

    torch_rate = None
    try:
        import _torch_dcgan
    except ImportError:  # torch is not installed: no side-by-side figure
        _torch_dcgan = None
    if _torch_dcgan is not None and args.width == 64 and not (args.ema or args.augment):
        torch_rate = _torch_dcgan.images_per_second(args.width, args.batch_size, args.steps)

    flops = 3 * generator_flops(trainer.generator) + 8 * discriminator_flops(trainer.discriminator)
    ceiling = matmul_gflops()
    print(
        f"DCGAN 64x64, width {args.width}, batch {args.batch_size}, ema {args.ema or 'off'}, "
        f"augment {args.augment or 'off'}, {tf.config.list_physical_devices()[0].device_type}, "
        f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS')}"
    )
    print(
        table(
            ("measure", "value"),
            [
                ("training images/s", f"{step_rate:.1f}"),
                *(
                    [
                        ("PyTorch, same DCGAN and step: images/s", f"{torch_rate:.1f}"),
                        ("tfinpaint / PyTorch", f"{step_rate / torch_rate:.2f}x"),
                    ]
                    if torch_rate
                    else []
                ),
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
