"""Odd inputs a user hands tfinpaint: phone photos, damaged files among good ones, huge masks."""

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageCms, ImageOps

from tfinpaint import data, faces, photos
from tfinpaint import fill as fill_lib
from tfinpaint.cli import main
from tfinpaint.errors import MaskError

EXIF_ORIENTATION = 0x0112


@pytest.fixture(scope="module")
def phone_photo(faces_dir, tmp_path_factory):
    """A real face stored as a phone stores a portrait photo: its pixels lying on their side
    (turned 90 degrees clockwise) and EXIF orientation 8 ("turn 90 degrees to show"), with an
    sRGB colour profile. Returns the file and the upright photo a viewer shows."""
    upright = Image.open(faces_dir / "000005.jpg").convert("RGB").resize((178, 218), Image.BICUBIC)
    stored = upright.transpose(Image.Transpose.ROTATE_270)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 8
    path = tmp_path_factory.mktemp("phone") / "portrait.jpg"
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    stored.save(path, quality=95, exif=exif, icc_profile=profile)
    with Image.open(path) as im:
        assert im.size == (218, 178)  # stored sideways
        shown = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    return path, shown, profile


def test_phone_photos_are_read_filled_and_written_as_they_are_shown(tiny_run, phone_photo, tmp_path):
    path, shown, profile = phone_photo
    assert shown.shape == (218, 178, 3)
    assert photos.header_size(path) == (178, 218)  # (width, height) as shown, from the header
    np.testing.assert_array_equal(photos.load_image_file(path), shown)
    [result] = fill_lib.fill([path], tiny_run, "block", iterations=2)
    assert result.image.shape == shown.shape
    known = ~result.hole
    np.testing.assert_array_equal(result.image[known], shown[known])
    [(written, _)] = result.save(tmp_path)
    with Image.open(written) as im:
        assert im.size == (178, 218) and im.info.get("icc_profile") == profile  # the colour profile is kept
        assert EXIF_ORIENTATION not in im.getexif()  # written upright: nothing left to turn
        np.testing.assert_array_equal(np.asarray(im)[known], shown[known])


def test_a_face_is_found_on_a_phone_photo_as_it_is_shown(phone_photo):
    path, _, _ = phone_photo
    detect = faces.detector()
    upright = detect(photos.load_image_file(path))
    assert len(upright) == 1
    with Image.open(path) as im:
        sideways = detect(np.asarray(im.convert("RGB")))  # the raw pixels, as tfinpaint read them before
    assert not sideways or max(f.confidence for f in sideways) < upright[0].confidence


def test_a_mask_file_is_turned_as_shown_too(tmp_path):
    from tfinpaint import masks

    m = np.zeros((40, 20), np.uint8)
    m[:10] = 255  # the top rows are missing, as shown
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6  # stored turned 90 degrees counter-clockwise
    Image.fromarray(m).transpose(Image.Transpose.ROTATE_90).save(tmp_path / "m.png", exif=exif)
    loaded = masks.load(tmp_path / "m.png", 40, 20)
    np.testing.assert_array_equal(loaded[..., 0], (m < 128).astype(np.float32))


def test_a_huge_mask_file_is_refused_from_its_header(tmp_path):
    from tfinpaint import masks

    Image.fromarray(np.zeros((20000, 20000), np.uint8)).save(tmp_path / "bomb.png")
    with pytest.raises(MaskError) as e:
        masks.load(tmp_path / "bomb.png", 64, 64)
    assert str(e.value) == (
        f"Mask {tmp_path / 'bomb.png'} is 20000x20000 (400.0 megapixels), over the limit of 40 megapixels"
    )


@pytest.mark.parametrize("batch_size, kind", [(1, "jpg"), (16, "jpg"), (16, "png")])
def test_a_damaged_photo_in_a_folder_stops_only_itself(tiny_run, faces_dir, tmp_path, batch_size, kind):
    """A JPEG or a PNG cut off after its header (a PNG's EXIF is read with its pixels: it used
    to escape as an unexpected OSError and stop the whole command)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    good = [f"00000{i}.jpg" for i in (1, 2, 4)]
    for name in good:
        (folder / name).write_bytes((faces_dir / name).read_bytes())
    if kind == "png":
        Image.open(faces_dir / "000003.jpg").save(tmp_path / "000003.png")
        whole = (tmp_path / "000003.png").read_bytes()
    else:
        whole = (faces_dir / "000003.jpg").read_bytes()
    (folder / f"000003.{kind}").write_bytes(whole[: len(whole) // 2])  # truncated: its header is fine
    out = tmp_path / "out"
    args = ["fill", str(folder), "--model", str(tiny_run), "--out", str(out), "--iterations", "1"]
    r = CliRunner().invoke(main, [*args, "--batch-size", str(batch_size)])
    assert r.exit_code == 1, r.output
    assert sorted(p.name for p in out.iterdir()) == [n.replace(".jpg", "_filled.png") for n in good]
    errors = [line for line in r.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 2 and f"000003.{kind}" in errors[0] and "Cannot read image" in errors[0], r.output
    assert errors[1] == "Error: 1 of 4 photos could not be filled (see above); the others were"
    again = CliRunner().invoke(main, [*args, "--batch-size", str(batch_size)])  # only the damaged one is left
    assert "Skipping 3 of 4 photos already filled" in again.output and again.exit_code == 1


@pytest.mark.parametrize(
    "args,message",
    [
        (["--lr", "nan"], "Invalid value for '--lr': 'nan' is not a finite number."),
        (["--lam", "inf"], "Invalid value for '--lam': 'inf' is not a finite number."),
        (["--refine-lr", "-inf"], "Invalid value for '--refine-lr': -inf is not in the range x>0."),
        (["--seed", "-1"], "Invalid value for '--seed': -1 is not in the range 0<=x<=9223372036854775807."),
        (["--seed", str(2**64)], f"Invalid value for '--seed': {2**64} is not in the range 0<=x<=9223372036854775807."),
    ],
)
def test_numbers_are_checked_where_they_enter(args, message, tmp_path):
    r = CliRunner().invoke(main, ["fill", "examples/astronaut.png", "--out", str(tmp_path), *args])
    assert r.exit_code == 2 and r.output.strip().splitlines()[-1] == f"Error: {message}"
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "command", [["train", "--dataset", "x", "--run-dir", "r"], ["train-encoder", "celeba64", "--run-dir", "r"]]
)
def test_training_learning_rates_must_be_finite(command):
    r = CliRunner().invoke(main, [*command, "--lr", "inf"])
    assert r.exit_code == 2 and "Invalid value for '--lr': 'inf' is not a finite number." in r.output


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("lr", float("nan"), "Expected a finite lr > 0, got nan"),
        ("lam", float("inf"), "Expected a finite lam >= 0, got inf"),
        ("lam", "0.1", "Expected a finite lam >= 0, got '0.1'"),
        ("seed", 2**63, f"Expected a seed in 0 ... 2**63 - 1, got {2**63}"),
    ],
)
def test_search_settings_refuse_what_the_search_cannot_use(field, value, message):
    from tfinpaint import TfinpaintError
    from tfinpaint.search import SearchSettings

    with pytest.raises(TfinpaintError) as e:  # what `except TfinpaintError` (the app's, say) catches
        SearchSettings(**{field: value})
    assert str(e.value) == message and isinstance(e.value, ValueError)


def test_a_bad_argument_anywhere_in_the_library_is_a_tfinpaint_error():
    from tfinpaint import TfinpaintError, augment, blend, metrics
    from tfinpaint.models import Generator

    calls = [
        lambda: augment.parse_policy("flip"),
        lambda: blend.blend_batch(np.zeros((1, 4, 4, 3)), np.zeros((1, 4, 4, 3)), np.ones((1, 4, 4, 1)), "paste"),
        lambda: blend.overlay(np.zeros((4, 4, 3)), np.zeros((4, 4, 3)), np.ones((5, 5, 1))),
        lambda: metrics.ssim(np.zeros((4, 4, 3)), np.zeros((4, 5, 3))),
        lambda: Generator(width=0),
    ]
    for call in calls:
        with pytest.raises(TfinpaintError):
            call()


@pytest.mark.parametrize(
    "change,message",
    [
        ({"search": {"iterations": "25"}}, 'search.iterations must be a whole number ≥ 0, got "25"'),
        ({"search": "fast"}, 'search must be an object, got "fast"'),
        ({"width": "32"}, 'width must be a whole number ≥ 1, got "32"'),
        ({"preprocess": "crop"}, 'preprocess must be one of "celeba", "svhn", "square", got "crop"'),
        ({"image_size": 48}, "image_size must be one of 32, 64, 128, got 48"),
        ({"search": {"lam": 1e999}}, "search.lam must be a finite number ≥ 0, got Infinity"),
        (
            {"search": {"refine": "more"}},
            'search.refine must be one of "none", "auto", "generator", "features", got "more"',
        ),
        ({"encoder": {"width": 0}}, "encoder.width must be a whole number ≥ 1, got 0"),
        ({"faces": {"spread": None}}, "faces.spread must be a finite number ≥ 0, got null"),
        ({"faces": {"landmarks": {"nose": [0.5, 0.5]}}}, "faces.landmarks must be an object of the 5 landmarks, got"),
        ({"batch_norm": "yes"}, 'batch_norm must be true or false, got "yes"'),
    ],
)
def test_every_card_field_is_checked_on_reading(tiny_run, tmp_path, change, message):
    import json
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    card = json.loads((run / "model.json").read_text())
    for key, value in change.items():
        card[key] = {**card[key], **value} if isinstance(value, dict) and isinstance(card.get(key), dict) else value
    (run / "model.json").write_text(json.dumps(card))
    r = CliRunner().invoke(main, ["fill", "examples/astronaut.png", "--model", str(run), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1
    assert r.output.strip().splitlines()[-1].startswith(f"Error: The model card {run / 'model.json'}: {message}"), (
        r.output
    )


def test_tfds_without_network_says_so_before_any_download(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)  # the downloads' own hosts are probed
    asked = []
    monkeypatch.setattr(data, "_reachable", lambda host, port: asked.append((host, port)) or False)

    def download(self, *args, **kwargs):
        raise AssertionError("TFDS's download (and its minutes of retries) must not start")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", download)
    r = CliRunner().invoke(
        main, ["train", "--dataset", "svhn_cropped", "--data-dir", str(tmp_path), "--run-dir", str(tmp_path / "r")]
    )
    assert r.exit_code == 1
    assert asked == [("storage.googleapis.com", 443), ("ufldl.stanford.edu", 80)]
    folder = tfds.builder("svhn_cropped", data_dir=str(tmp_path)).data_dir
    assert r.output.strip().splitlines()[-1] == (
        f"Error: TFDS dataset svhn_cropped is not prepared in {folder} and cannot be "
        "downloaded: storage.googleapis.com, ufldl.stanford.edu cannot be reached from here. Prepare it where "
        f"there is internet (`tfds build svhn_cropped --data_dir DIR`), copy DIR here and pass --data-dir DIR, or "
        "train on a folder of images"
    )


def test_a_mask_with_no_missing_pixel_says_so_and_changes_nothing(tiny_run, faces_dir, tmp_path):
    photo = faces_dir / "000001.jpg"
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "none.png")  # black: every pixel known
    r = CliRunner().invoke(
        main,
        [
            "fill",
            str(photo),
            "--model",
            str(tiny_run),
            "--mask",
            str(tmp_path / "none.png"),
            "--out",
            str(tmp_path / "o"),
            "--iterations",
            "1",
        ],
    )
    assert r.exit_code == 0, r.output
    assert (
        f"Warning: {photo}: its mask marks no pixel as missing, so nothing was filled: the photo is as it was"
        in r.output
    )
    np.testing.assert_array_equal(
        np.asarray(Image.open(tmp_path / "o" / "000001_filled.png")), photos.load_image_file(photo)
    )


def test_a_fifo_or_a_looping_link_in_a_folder_is_passed_over(tiny_run, faces_dir, tmp_path):
    import os

    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "000001.jpg").write_bytes((faces_dir / "000001.jpg").read_bytes())
    os.mkfifo(folder / "pipe.jpg")
    (folder / "loop.jpg").symlink_to(folder / "loop.jpg")
    assert photos.list_images(folder) == [str(folder / "000001.jpg")]
    r = CliRunner().invoke(
        main, ["fill", str(folder), "--model", str(tiny_run), "--out", str(tmp_path / "o"), "--iterations", "1"]
    )
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["000001_filled.png"]


def test_a_model_file_with_a_lambda_layer_is_refused_for_what_it_is(tiny_run, tmp_path):
    import shutil

    import keras

    from tfinpaint.errors import ModelError
    from tfinpaint.store import load_model

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    x = keras.Input((16,))
    keras.Model(x, keras.layers.Lambda(lambda t: t * 2)(x)).save(run / "generator.keras")
    with pytest.raises(ModelError) as e:
        load_model(run)
    assert str(e.value) == (
        f"{run / 'generator.keras'} holds code (such as a Lambda layer) that Keras's safe mode refuses to run: "
        "a tfinpaint model holds none, so it was not written by tfinpaint"
    )


@pytest.mark.parametrize("kind,refined", [("block", False), ("random", True)])
def test_the_progress_counts_only_the_steps_that_run(tiny_run, faces_dir, kind, refined):
    seen = []
    [result] = fill_lib.fill(
        [faces_dir / "000001.jpg"],
        tiny_run,
        kind,
        iterations=4,
        refine="auto",
        refine_steps=6,
        progress=lambda label, it, total, loss: seen.append((it, total)),
    )
    total = 4 + (6 if refined else 0)
    assert {t for _, t in seen} == {total} and seen[-1][0] == total
    assert len(result.views[0].history) == total


def test_a_card_write_that_fails_leaves_the_old_card_and_no_temporary(tiny_run, tmp_path, monkeypatch):
    import shutil
    from pathlib import Path

    from tfinpaint.store import ModelCard

    shutil.copy(tiny_run / "model.json", tmp_path / "model.json")
    before = (tmp_path / "model.json").read_text()
    card = ModelCard.read(tmp_path / "model.json")
    real = Path.write_text

    def full_disk(self, *args, **kwargs):
        real(self, "{")  # half written
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OSError, match="No space left"):
        card.write(tmp_path / "model.json")
    monkeypatch.undo()
    assert (tmp_path / "model.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json"]


def test_a_mistyped_option_of_fill_is_refused_not_dropped(tiny_run, faces_dir):
    from tfinpaint import TfinpaintError

    with pytest.raises(TfinpaintError, match="Unknown option 'iteration' of fill: expected a search setting"):
        next(fill_lib.fill([faces_dir / "000001.jpg"], tiny_run, "examples/astronaut.png", iteration=3))


@pytest.mark.parametrize(
    "option, message",
    [
        ({"missing": 1.5}, "missing must be a share between 0 and 1, got 1.5"),
        ({"side": "middle"}, r"side must be one of \('left', 'right', 'top', 'bottom'\), got 'middle'"),
        ({"block_size": 0}, "block_size must be a whole number of at least 1, got 0"),
        ({"block_size": 33}, r"block_size must be at most the model's side \(32\), got 33"),
    ],
)
def test_a_bad_mask_option_is_refused_once_before_any_photo(tiny_run, faces_dir, option, message):
    """Not one failure per photo (with errors="report" each photo's mask would fail alone)."""
    photos = [faces_dir / "000001.jpg", faces_dir / "000002.jpg"]
    with pytest.raises(MaskError, match=f"^{message}$"):
        next(fill_lib.fill(photos, tiny_run, "random", errors="report", iterations=1, **option))
