import numpy as np
import pytest
from PIL import Image

from tfinpaint import masks


def test_block_default_is_half_the_side_centred():
    m = masks.block(64)
    assert m.shape == (64, 64, 1) and m.dtype == np.float32
    assert (m == 0).sum() == 32 * 32
    assert (m[16:48, 16:48] == 0).all() and m[15].all() and m[:, 48].all()
    assert (masks.block(64, 10) == 0).sum() == 100


def test_random_coverage_and_seed():
    m = masks.random(64, 0.8, np.random.default_rng(3))
    assert abs((m == 0).mean() - 0.8) < 0.02
    np.testing.assert_array_equal(m, masks.random(64, 0.8, np.random.default_rng(3)))
    assert not np.array_equal(m, masks.random(64, 0.8, np.random.default_rng(4)))


@pytest.mark.parametrize(
    "side,region", [("left", np.s_[:, :32]), ("right", np.s_[:, 32:]), ("top", np.s_[:32]), ("bottom", np.s_[32:])]
)
def test_half(side, region):
    m = masks.half(64, side)
    assert (m[region] == 0).all() and (m == 0).sum() == 64 * 32


def test_pattern_covers_about_a_quarter_in_blobs():
    m = masks.pattern(64, rng=np.random.default_rng(0))
    assert abs((m == 0).mean() - 0.25) < 0.01
    from scipy.ndimage import label

    _, blobs = label(m[..., 0] == 0)
    assert 1 <= blobs <= 30  # blobs, not scattered pixels


def test_mask_file_resized_nearest_and_inverted(tmp_path):
    img = np.zeros((10, 20), np.uint8)
    img[:, 10:] = 255  # right half white = missing
    Image.fromarray(img).save(tmp_path / "m.png")
    m = masks.load(tmp_path / "m.png", 32, 64)
    assert m.shape == (32, 64, 1)
    assert set(np.unique(m)) == {0.0, 1.0}
    assert (m[:, 32:] == 0).all() and (m[:, :32] == 1).all()
    np.testing.assert_array_equal(masks.load(tmp_path / "m.png", 32, 64, invert=True), 1 - m)


def test_mask_folder_matches_by_name(tmp_path):
    (tmp_path / "a_mask.png").write_bytes(b"")
    (tmp_path / "b.PNG").write_bytes(b"")
    assert masks.find_in_folder(tmp_path, "/x/a.jpg").name == "a_mask.png"
    assert masks.find_in_folder(tmp_path, "b.png").name == "b.PNG"
    with pytest.raises(masks.MaskError, match="No mask for c.jpg"):
        masks.find_in_folder(tmp_path, "c.jpg")


def test_bad_inputs(tmp_path):
    (tmp_path / "bad.png").write_text("not an image")
    with pytest.raises(masks.MaskError, match="Cannot read mask .*bad.png"):
        masks.load(tmp_path / "bad.png", 8, 8)
    with pytest.raises(masks.MaskError, match="Unknown mask kind 'circle'"):
        masks.make("circle", 8)
    with pytest.raises(masks.MaskError, match="block size"):
        masks.block(8, 9)
