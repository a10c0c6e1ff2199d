"""Odd inputs a user hands tfinpaint: phone photos, damaged files among good ones, huge masks."""

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageCms, ImageOps

from tfinpaint import data, faces
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
    assert data.check_image_file(path) == (178, 218)  # (width, height) as shown, from the header
    np.testing.assert_array_equal(data.load_image_file(path), shown)
    [result] = fill_lib.fill([path], tiny_run, "block", iterations=2)
    assert result.image.shape == shown.shape
    known = result.prepared.mask[..., 0] > 0.5
    np.testing.assert_array_equal(result.image[known], shown[known])
    [written] = fill_lib.save(result, tmp_path)
    with Image.open(written) as im:
        assert im.size == (178, 218) and im.info.get("icc_profile") == profile  # the colour profile is kept
        assert EXIF_ORIENTATION not in im.getexif()  # written upright: nothing left to turn
        np.testing.assert_array_equal(np.asarray(im)[known], shown[known])


def test_a_face_is_found_on_a_phone_photo_as_it_is_shown(phone_photo):
    path, _, _ = phone_photo
    detect = faces.detector()
    upright = detect(data.load_image_file(path))
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


@pytest.mark.parametrize("batch_size", [1, 16])
def test_a_damaged_photo_in_a_folder_stops_only_itself(tiny_run, faces_dir, tmp_path, batch_size):
    folder = tmp_path / "photos"
    folder.mkdir()
    good = [f"00000{i}.jpg" for i in (1, 2, 4)]
    for name in good:
        (folder / name).write_bytes((faces_dir / name).read_bytes())
    whole = (faces_dir / "000003.jpg").read_bytes()
    (folder / "000003.jpg").write_bytes(whole[: len(whole) // 2])  # truncated: its header is fine
    out = tmp_path / "out"
    args = ["fill", str(folder), "--model", str(tiny_run), "--out", str(out), "--iterations", "1"]
    r = CliRunner().invoke(main, [*args, "--batch-size", str(batch_size)])
    assert r.exit_code == 1, r.output
    assert sorted(p.name for p in out.iterdir()) == [n.replace(".jpg", "_filled.png") for n in good]
    errors = [line for line in r.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 2 and "000003.jpg" in errors[0] and "Cannot read image" in errors[0], r.output
    assert errors[1] == "Error: 1 of 4 photos could not be filled (see above); the others were"
    again = CliRunner().invoke(main, [*args, "--batch-size", str(batch_size)])  # only the damaged one is left
    assert "Skipping 3 of 4 photos already filled" in again.output and again.exit_code == 1
