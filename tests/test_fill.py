"""tfinpaint.fill, views and photos: photos in, photos out; the geometry of the paste-back and the streaming."""

import dataclasses
import re

import numpy as np
import pytest
from PIL import Image
from synthetic import boundary_step

from tfinpaint import data, faces, masks, photos, views
from tfinpaint import fill as fill_lib
from tfinpaint.errors import DataError, MaskError, OutputError
from tfinpaint.store import load_model


@pytest.fixture(scope="module")
def photo(faces_dir):
    """A real face, 64 wide and 80 high: the `square` preset sees rows 8-71, all columns."""
    return np.asarray(Image.open(faces_dir / "000005.jpg").convert("RGB").resize((64, 80), Image.BICUBIC))


def _look(photo, mask, preprocess="square", size=64):
    """The view of a photo through the model's crop, as `fill` takes it."""
    frame = views.Crop.of(*photo.shape[:2], preprocess)
    (fills,) = views.assign_hole(mask, [frame], "photo", preprocess)
    return views.look(photo, mask, frame, size, fills)


def _prepared(photo, kind="block"):
    mask = views.Crop.of(80, 64, "square").mask_from_model(masks.make(kind, 64), *photo.shape[:2])
    return _look(photo, mask), mask[..., 0] < 0.5


def _pasted(photo, view, generated, method):
    return views.paste_back(photo, dataclasses.replace(view, generated=generated), method)


def test_the_view_is_the_crop(photo):
    view, hole = _prepared(photo)
    assert view.box == (8, 0, 64, 64) and not view.aligned
    assert hole[8 + 16 : 8 + 48, 16:48].all() and hole.sum() == 32 * 32  # the centre block of the crop
    np.testing.assert_array_equal(view.fills, hole)
    crop = photo[8:72].astype(np.float32) / 127.5 - 1
    known = view.mask[..., 0] > 0.5
    np.testing.assert_allclose(view.image[known], crop[known], atol=1e-6)
    assert (view.image[~known] == 0).all()  # the hole is never passed on


@pytest.mark.parametrize("method", ["overlay", "poisson"])
def test_paste_back_puts_g_exactly_where_it_belongs(photo, method):
    """G(z) equal to the true crop must give back the photo itself, pixel for pixel; one pixel
    off (in either direction) it cannot."""
    prep, hole = _prepared(photo)
    truth = photo[8:72].astype(np.float32) / 127.5 - 1
    out = _pasted(photo, prep, truth, method)
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - photo).max() <= (0 if method == "overlay" else 1)
    for shift in ((1, 0), (0, 1), (-1, 0)):
        off = _pasted(photo, prep, np.roll(truth, shift, axis=(0, 1)), method)
        assert np.abs(off.astype(int) - photo)[hole].mean() > 3  # a real face's edges move


def test_poisson_takes_the_level_from_the_photo_and_overlay_does_not(photo):
    prep, hole = _prepared(photo)
    brighter = photo[8:72].astype(np.float32) / 127.5 - 1 + 0.2  # G(z) 25.5 levels too bright
    overlay = _pasted(photo, prep, brighter, "overlay").astype(int)
    poisson = _pasted(photo, prep, brighter, "poisson").astype(int)
    expected = np.clip(photo + 25.5, 0, 255)  # overlay pastes G(z) as it is (clipped at white)
    assert np.abs(overlay - expected)[hole].max() <= 1
    assert np.abs(poisson - photo)[hole].mean() < 1.0  # the boundary removes the offset
    np.testing.assert_array_equal(poisson[~hole], photo[~hole])
    np.testing.assert_array_equal(overlay[~hole], photo[~hole])


def test_fill_streams_batches_and_keeps_known_pixels(tiny_run, faces_dir, monkeypatch):
    files = [faces_dir / f"00000{i}.jpg" for i in range(1, 6)]
    read = []
    real_read = photos.read
    monkeypatch.setattr(photos, "read", lambda p, i, *rest: read.append(i) or real_read(p, i, *rest))
    model = load_model(tiny_run)
    results = fill_lib.fill(files, model, "random", batch_size=2, iterations=3)
    first = next(results)
    assert read == [0, 1]  # only the first batch has been read
    rest = list(results)
    assert read == [0, 1, 2, 3, 4]
    assert [r.name for r in [first, *rest]] == [f.name for f in files]
    for r, f in zip([first, *rest], files):
        original = np.asarray(Image.open(f).convert("RGB"))
        (view,) = r.views
        assert r.image.shape == original.shape and view.generated.shape == (32, 32, 3)
        np.testing.assert_array_equal(r.image[~r.hole], original[~r.hole])
        assert np.isfinite(view.loss) and view.loss > 0
    # each photo's random mask is seeded by its place in the whole list, not in its batch
    alone = next(fill_lib.fill(files[3:4], model, "random", iterations=3))
    assert not np.array_equal(alone.hole, rest[2].hole)
    again = list(fill_lib.fill(files, model, "random", batch_size=5, iterations=3))
    np.testing.assert_array_equal(again[3].hole, rest[2].hole)
    np.testing.assert_array_equal(again[3].image, rest[2].image)  # batch-independent results


def test_fill_arrays_and_mask_arrays(tiny_run, photo):
    m = np.ones((80, 64, 1), np.float32)
    m[30:50, 20:40] = 0
    (r,) = fill_lib.fill([photo], tiny_run, m, iterations=2)
    assert r.name == "image_0" and r.source is None
    np.testing.assert_array_equal(r.image[m[..., 0] > 0.5], photo[m[..., 0] > 0.5])
    np.testing.assert_array_equal(r.hole, m[..., 0] < 0.5)  # the array is the hole, pixel for pixel
    assert np.abs(r.image[30:50, 20:40].astype(int) - photo[30:50, 20:40]).mean() > 2  # and it was filled
    assert r.panel().shape == (39, 4 * 39 + 3 * 4, 3)  # the celeba crop of a 64-wide photo: 39x39


def test_fill_checks_every_input_before_any_work(tiny_run, faces_dir, tmp_path):
    files = [faces_dir / "000001.jpg", tmp_path / "missing.png"]
    with pytest.raises(DataError, match="missing.png: no such file"):
        next(fill_lib.fill(files, tiny_run))
    (tmp_path / "masks").mkdir()
    with pytest.raises(MaskError, match="No mask for 000001.jpg"):
        next(fill_lib.fill(files[:1], tiny_run, tmp_path / "masks"))


def test_outputs_are_checked_before_the_search(tmp_path, faces_dir):
    a, b = faces_dir / "000001.jpg", tmp_path / "000001.png"
    with pytest.raises(OutputError, match="Two photos would both be written to .*000001_filled.png"):
        photos.still_to_fill([a, b], tmp_path, panel=False, overwrite=False)
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(OutputError, match=f"Cannot write results to {tmp_path / 'file' / 'out'}: Not a dir"):
        photos.still_to_fill([a], tmp_path / "file" / "out", panel=False, overwrite=False)
    # a photo whose outputs all exist is done: a re-run fills only what is missing
    c = faces_dir / "000002.jpg"
    (tmp_path / "000001_filled.png").write_bytes(b"x")
    assert photos.still_to_fill([a, c], tmp_path, panel=False, overwrite=False) == [c]
    assert photos.still_to_fill([a, c], tmp_path, panel=True, overwrite=False) == [a, c]  # no panel yet
    assert photos.still_to_fill([a, c], tmp_path, panel=False, overwrite=True) == [a, c]


def _dead_pid():
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_results_are_written_atomically_and_never_replace_another_runs(tiny_run, faces_dir, tmp_path):
    [result] = fill_lib.fill([faces_dir / "000001.jpg"], tiny_run, iterations=2)
    target = tmp_path / "000001_filled.png"
    # what a run killed while writing leaves: only its hidden temporary, which the next run removes
    stale = tmp_path / f".000001_filled.png.{_dead_pid()}.tmp"
    stale.write_bytes(b"half a PNG")
    assert photos.still_to_fill([faces_dir / "000001.jpg"], tmp_path, panel=True, overwrite=False)
    assert not stale.exists()
    assert result.save(tmp_path, panel=True) == [(target, True), (tmp_path / "000001_panel.png", True)]
    assert np.array_equal(np.asarray(Image.open(target)), result.image)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["000001_filled.png", "000001_panel.png"]
    # another run's file, written while this one searched, is kept
    target.write_bytes(b"another run's result")
    assert result.save(tmp_path) == [(target, False)]
    assert target.read_bytes() == b"another run's result"
    assert result.save(tmp_path, overwrite=True) == [(target, True)]
    assert np.array_equal(np.asarray(Image.open(target)), result.image)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["000001_filled.png", "000001_panel.png"]


def test_photos_over_the_pixel_limit_are_refused_from_their_header(tiny_run, faces_dir, tmp_path):
    # 20000x20000 (400 megapixels; Pillow alone raises DecompressionBombError): a 0.4 MB file
    huge = tmp_path / "huge.png"
    Image.fromarray(np.zeros((20000, 20000), np.uint8)).save(huge)
    message = (
        f"Image {huge} is 20000x20000 (400.0 megapixels), over the limit of 40 megapixels; "
        "pass `max_pixels=400000000` to fill it anyway"
    )
    with pytest.raises(DataError) as e:
        next(fill_lib.fill([faces_dir / "000001.jpg", huge], tiny_run))  # refused before the first photo
    assert str(e.value) == message
    small = faces_dir / "000001.jpg"  # 89x109 = 9,701 pixels
    with pytest.raises(DataError, match=r"is 89x109 \(0.0 megapixels\), over the limit of 0.009 megapixels"):
        next(fill_lib.fill([small], tiny_run, max_pixels=9_000))
    [result] = fill_lib.fill([small], tiny_run, max_pixels=9_701, iterations=1)
    assert result.image.shape == (109, 89, 3)


def test_no_seam_where_the_hole_reaches_the_edge_of_the_crop(faces_dir):
    """A 128x160 face seen through the celeba crop (the centre 78x78) with the crop's left half
    missing: along the crop's edge the hole meets known photo pixels the model never saw. G(z)
    here is another person's face, so blending against the crop's edge would leave a step of
    tens of grey levels there; the photo's own pixels must set the boundary instead."""
    photo = np.asarray(Image.open(faces_dir / "000005.jpg").convert("RGB").resize((128, 160), Image.BICUBIC))
    mask = views.Crop.of(160, 128, "celeba").mask_from_model(masks.half(64, "left"), 160, 128)
    prep = _look(photo, mask, "celeba")
    other = np.asarray(Image.open(faces_dir / "000009.jpg").convert("RGB"))
    generated = data.preprocess_numpy(other, "celeba", 64)
    hole = mask[..., 0] < 0.5
    own = boundary_step(photo, hole)
    out = _pasted(photo, prep, generated, "poisson")
    np.testing.assert_array_equal(out[~hole], photo[~hole])
    assert boundary_step(out, hole) < 1.5 * own
    assert boundary_step(_pasted(photo, prep, generated, "overlay"), hole) > 5 * own  # what a seam measures


def test_too_small_photos_are_refused_and_almost_empty_views_warned(tiny_run, photo):
    model = load_model(tiny_run)
    with pytest.raises(DataError) as e:
        next(fill_lib.fill([np.zeros((1, 1, 3), np.uint8)], model))
    least = int(np.ceil(model.image_size * photos.MIN_VIEW))
    assert str(e.value) == (
        f"Image image_0 is 1x1: the region the model sees (1x1, {model.preprocess} preprocessing) "
        f"must be at least {least}x{least} pixels"
    )
    top, left, h, w = data.crop_box(*photo.shape[:2], model.preprocess)
    hole = np.ones(photo.shape[:2] + (1,), np.float32)
    hole[top : top + h, left + 3 : left + w] = 0.0  # 3 columns of the view known: under 10%
    [empty] = fill_lib.fill([photo], model, [hole], iterations=1)
    assert re.fullmatch(
        r"only [1-9]% of the region the model sees in image_0 is known \(under 10%\): "
        r"the fill is mostly the model's own guess",
        empty.warning,
    )
    [block] = fill_lib.fill([photo], model, "block", iterations=1)
    assert block.warning is None


@pytest.mark.parametrize("mode", ["L", "I;16"])
def test_grayscale_photos_get_grayscale_results(tiny_run, photo, tmp_path, mode):
    gray = np.asarray(Image.fromarray(photo).convert("L"))
    path = tmp_path / "gray.png"
    if mode == "L":
        Image.fromarray(gray).save(path)
    else:
        Image.fromarray(gray.astype(np.uint16) * 257).save(path)  # 16 bits, the same picture
    assert Image.open(path).mode == mode
    [result] = fill_lib.fill([path], tiny_run, "block", iterations=1)
    assert result.image.shape == gray.shape + (1,)
    hole = result.hole
    np.testing.assert_array_equal(result.image[..., 0][~hole], gray[~hole])
    [(written, _)] = result.save(tmp_path / "out")
    assert Image.open(written).mode == "L"


def test_folders_and_globs_are_filled_into_the_same_relative_places(tiny_run, faces_dir, tmp_path):
    folder = tmp_path / "photos"
    for sub, name in (("a", "000001.jpg"), ("b", "000001.jpg"), ("b/c", "000002.jpg")):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        (folder / sub / name).write_bytes((faces_dir / name).read_bytes())
    (folder / "notes.txt").write_text("not an image")
    listed = photos.expand([folder])
    assert [p.name for p in listed] == ["a/000001.jpg", "b/000001.jpg", "b/c/000002.jpg"]
    globbed = photos.expand([str(folder / "b" / "**" / "*.jpg")])  # named from where the glob starts
    assert globbed == [(folder / "b" / "000001.jpg", "000001.jpg"), (folder / "b/c/000002.jpg", "c/000002.jpg")]
    out = tmp_path / "out"
    results = list(fill_lib.fill([folder], tiny_run, iterations=1, batch_size=2))
    assert [r.name for r in results] == ["a/000001.jpg", "b/000001.jpg", "b/c/000002.jpg"]
    for r in results:
        r.save(out)
    found = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    assert found == ["a/000001_filled.png", "b/000001_filled.png", "b/c/000002_filled.png"]
    assert photos.still_to_fill(listed, out, panel=False, overwrite=False) == []  # all done
    with pytest.raises(DataError, match=f"No images match {tmp_path}/\\*.gif"):
        photos.expand([str(tmp_path / "*.gif")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=f"No images found in {tmp_path / 'empty'}"):
        photos.expand([tmp_path / "empty"])


@pytest.mark.parametrize("shape", [(218, 178), (109, 89), (512, 512)])
def test_a_random_mask_reaches_the_model_as_it_was_made(shape, rng):
    """A mask made at the model's size and stretched over the photo comes back to the model as
    it was (80% missing stays 80%, not the 1-4% a rule of "every photo pixel under it known"
    left), through the crop and through a face's frame, and no missing pixel's value goes in."""
    h, w = shape
    made = masks.random(64, 0.8, rng)
    photo = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    box = data.crop_box(h, w, "celeba")
    mask = views.Crop.of(h, w, "celeba").mask_from_model(made, h, w)
    prep = _look(photo, mask, "celeba")
    # nearly all where the photo has more pixels than the model (measured 98.6-100%); 91% from a
    # 54x54 crop, whose 2,916 pixels cannot hold the model's 4,096
    assert (prep.mask == made).mean() > (0.98 if box.height >= 64 else 0.88)
    assert abs(prep.mask.mean() - made.mean()) < 0.06
    poisoned = np.where(mask > 0.5, photo, 255).astype(np.uint8)
    again = _look(np.where(mask > 0.5, photo, 0).astype(np.uint8), mask, "celeba")
    spoiled = _look(poisoned, mask, "celeba")
    known = prep.mask[..., 0] > 0.5
    changed = known & (np.abs(again.image - spoiled.image) > 1e-4).any(axis=-1)
    assert not changed.any()
    frame = faces.Frame.of_box(box)
    face_mask = frame.mask_from_model(made, h, w)
    face = views.look(photo, face_mask, frame, 64, face_mask[..., 0] < 0.5)
    # sampled, not cut in whole photo pixels: ties at the edges of model pixels count as known
    # (measured: 90-100% of pixels as made, 20-25% known against 20%)
    assert (face.mask == made).mean() > 0.88
    assert abs(face.mask.mean() - made.mean()) < 0.06


def test_the_package_fill_is_the_function_however_often_it_is_used(tiny_run, photo):
    """`tfinpaint.fill(...)` as the API says, even once the module `tfinpaint.fill` is imported
    (which binds the package's attribute to the module: the second use used to get the module)."""
    import tfinpaint

    first = list(tfinpaint.fill([photo], tiny_run, "block", iterations=1))
    second = list(tfinpaint.fill([photo], tiny_run, "block", iterations=1))
    np.testing.assert_array_equal(first[0].image, second[0].image)
