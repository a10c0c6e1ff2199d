import warnings

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from tfinpaint import data, photos


def test_folder_of_real_faces(few_faces):
    src = data.resolve(str(few_faces), preprocess="celeba", holdout=10)
    assert src.kind == "files" and src.preprocess == "celeba"
    assert len(src.files) == 70 and len(src.heldout) == 10
    assert src.heldout[0].endswith("000001.jpg") and src.files[0].endswith("000011.jpg")
    base, count = data.base_dataset(src, 32)
    assert count == 70
    batch = next(iter(data.epoch_dataset(base, count, 16, epoch=0, seed=0)))
    assert batch.shape == (16, 32, 32, 3) and batch.dtype == tf.float32
    assert -1.0 <= float(tf.reduce_min(batch)) < -0.5 and 0.5 < float(tf.reduce_max(batch)) <= 1.0


def test_celeba_preset_crops_the_papers_centre():
    # 89x109 half-size faces keep their centre 54x54, as 108x108 of the 178x218 originals
    assert data.crop_box(109, 89, "celeba") == (27, 17, 54, 54)
    assert data.crop_box(218, 178, "celeba") == (55, 35, 108, 108)
    assert data.crop_box(32, 32, "svhn") == (0, 0, 32, 32)
    assert data.crop_box(40, 60, "square") == (0, 10, 40, 40)
    img = np.zeros((109, 89, 3), np.uint8)
    img[27:81, 17:71] = 200  # the crop is all 200; anything else would darken the edges
    out = data.preprocess_image(tf.constant(img), "celeba", 64)
    assert out.shape == (64, 64, 3) and float(tf.reduce_min(out)) == 200.0


def test_glob_and_digits_preset(tmp_path, digits_dir):
    digits = sorted(digits_dir.glob("*.png"))[:12]
    for p in digits:
        (tmp_path / p.name).symlink_to(p)
    src = data.resolve(str(tmp_path / "svhn_0000*.png"), holdout=0)
    assert src.preprocess == "svhn" and len(src.files) == 10
    base, count = data.base_dataset(src, 64)
    first = next(iter(base))
    assert first.shape == (64, 64, 3) and first.dtype == tf.uint8


def test_undecodable_files_are_skipped_with_one_warning(tmp_path, few_faces):
    for p in sorted(few_faces.iterdir())[:3]:
        (tmp_path / p.name).symlink_to(p.resolve())
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (tmp_path / "empty.png").write_bytes(b"")
    src = data.resolve(str(tmp_path), preprocess="square", holdout=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, count = data.base_dataset(src, 32)
    assert count == 3
    messages = [str(w.message) for w in caught if "could not be decoded" in str(w.message)]
    assert messages == [f"Skipped 2 of 5 files in {tmp_path} that could not be decoded"]


def test_errors_name_what_was_given(tmp_path):
    with pytest.raises(data.DataError, match=f"No images .* found in {tmp_path}"):
        data.resolve(str(tmp_path))
    with pytest.raises(data.DataError, match="'no_such_dataset' is neither an existing folder nor a TFDS dataset name"):
        data.resolve("no_such_dataset")
    with pytest.raises(data.DataError, match="Unknown preprocessing 'zoom'"):
        data.resolve("celeb_a", preprocess="zoom")


@pytest.mark.parametrize(
    "spec,name,preset,holdout",
    [
        ("celeba_a", "celeb_a", "celeba", 2000),
        ("celeba", "celeb_a", "celeba", 2000),
        ("svhn_cropped", "svhn_cropped", "svhn", 0),
    ],
)
def test_tfds_path_with_mock_data(spec, name, preset, holdout, monkeypatch):
    monkeypatch.setattr(data, "_reachable", lambda host, port: True)  # mock data downloads nothing
    with tfds.testing.mock_data(num_examples=12):
        src = data.resolve(spec)
        assert (src.kind, src.name, src.preprocess) == ("tfds", name, preset)
        assert src.split == (f"train[{holdout}:]" if holdout else "train")
        base, count = data.base_dataset(src, 32)
        assert count == 12
        batch = next(iter(data.epoch_dataset(base, count, 4, epoch=0, seed=0)))
    assert batch.shape == (4, 32, 32, 3)
    assert float(tf.reduce_min(batch)) >= -1.0 and float(tf.reduce_max(batch)) <= 1.0


def test_epoch_order_is_seeded_and_resumable(few_faces):
    src = data.resolve(str(few_faces), holdout=0)
    base, count = data.base_dataset(src, 32)
    a = [b.numpy() for b in data.epoch_dataset(base, count, 8, epoch=2, seed=5)]
    b = [b.numpy() for b in data.epoch_dataset(base, count, 8, epoch=2, seed=5).skip(4)]
    c = [b.numpy() for b in data.epoch_dataset(base, count, 8, epoch=3, seed=5)]
    assert len(a) == 10
    for x, y in zip(a[4:], b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "RGB"])
def test_load_image_file_any_mode(tmp_path, mode):
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    im = Image.fromarray(rgb)
    if mode == "I;16":
        im = Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)
    elif mode != "RGB":
        im = im.convert(mode)
    im.save(tmp_path / "x.png")
    out = photos.load_image_file(tmp_path / "x.png")
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    if mode == "I;16":
        np.testing.assert_array_equal(out[..., 1], rgb[..., 0])
    if mode in ("RGB", "RGBA"):
        np.testing.assert_array_equal(out, rgb)


def test_load_image_file_error_names_the_file(tmp_path):
    (tmp_path / "x.png").write_text("text")
    with pytest.raises(data.DataError, match=r"Cannot read image .*x\.png"):
        photos.load_image_file(tmp_path / "x.png")


# The real TFDS builder path, in a fresh process (mock_data never reaches it): with no
# prepared copy and no network, the download fails and says in one line what to do.
# No download can start: HTTP(S) goes to a closed local port, and TFDS's ten retries with
# backoff (200 s) are cut to none.
_REAL_BUILDER = """
import sys
import tensorflow_datasets.core.download.downloader as downloader
downloader.MAX_RETRIES = 0
from tfinpaint import data
from tfinpaint.errors import DataError
source = data.resolve(sys.argv[1], None, 0)
try:
    data.base_dataset(source, 64, data_dir=sys.argv[2])
except DataError as e:
    print(e)
"""


@pytest.mark.parametrize("name,version", [("celeb_a", "2.1.0"), ("svhn_cropped", "3.1.0")])
def test_tfds_builder_without_data_or_network_says_where_to_put_it(tmp_path, name, version):
    import os
    import subprocess
    import sys

    env = dict(os.environ, HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9", NO_PROXY="")
    p = subprocess.run(
        [sys.executable, "-c", _REAL_BUILDER, name, str(tmp_path)], env=env, capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 0, p.stderr[-2000:]
    message = p.stdout.strip().splitlines()[-1]
    start = (
        f"TFDS dataset {name} is not prepared in {tmp_path / name / version} and cannot be downloaded: "
        "127.0.0.1 cannot be reached from here. "  # the proxy that every download would go through
    )
    assert message.startswith(start), message
    assert "Downloading and preparing" not in p.stdout + p.stderr  # said before TFDS starts
    assert message.endswith(
        f"Prepare it where there is internet (`tfds build {name} --data_dir DIR`), copy DIR here and pass "
        "`data_dir=DIR`, or train on a folder of images"  # the command line says --data-dir DIR (test_inputs)
    )
