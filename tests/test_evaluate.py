import numpy as np
import pytest

from tfinpaint import evaluate, metrics
from tfinpaint.fill import load_model
from tfinpaint.inpaint import SearchSettings


def test_evaluate_scores_ours_and_the_mean_colour_on_real_faces(tiny_run, faces_dir):
    model = load_model(tiny_run)
    files = [faces_dir / f"00000{i}.jpg" for i in range(1, 5)]
    scores = evaluate.evaluate(model, files, kinds=("block", "half"), settings=SearchSettings(iterations=5))
    assert [(s.mask, s.method, s.n) for s in scores] == [
        ("block", "ours", 4),
        ("block", "mean colour", 4),
        ("half", "ours", 4),
        ("half", "mean colour", 4),
    ]
    for s in scores:
        assert 5 < s.psnr < 40 and -1 <= s.ssim <= 1
    # the mean-colour score is deterministic: recompute it by hand for the block mask
    images = evaluate.load_images(files, "celeba", 32)
    m = evaluate.make_masks("block", 4, 32, 0)
    by_hand = np.mean([metrics.psnr((x + 1) / 2, (metrics.mean_colour_fill(x, k) + 1) / 2) for x, k in zip(images, m)])
    assert scores[1].psnr == pytest.approx(by_hand)
