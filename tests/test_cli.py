import json
import os
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from tfinpaint import fill as fill_lib
from tfinpaint.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_help_describes_every_option():
    """Every command is listed, and each of its options is in its --help with a description
    (read off the commands themselves, so a new option cannot be missed)."""
    top = run("--help")
    assert top.exit_code == 0
    for name, command in main.commands.items():
        assert name in top.output
        out = run(name, "--help").output
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, (name, param.name)
                for opt in param.opts + param.secondary_opts:
                    assert opt in out, (name, opt)


def test_train_command_end_to_end(few_faces, tmp_path):
    r = run(
        "train",
        "--dataset",
        few_faces,
        "--preprocess",
        "celeba",
        "--image-size",
        32,
        "--width",
        4,
        "--latent-dim",
        8,
        "--batch-size",
        8,
        "--steps",
        3,
        "--holdout",
        8,
        "--run-dir",
        tmp_path / "r",
    )
    assert r.exit_code == 0, r.output
    assert "Trained models saved in" in r.output
    assert (tmp_path / "r" / "generator.keras").is_file()


def test_train_init_fine_tunes_an_export_and_resumes(few_faces, tiny_export, tmp_path):
    args = ["train", "--init", tiny_export, "--dataset", few_faces, "--batch-size", 8, "--run-dir", tmp_path / "ft"]
    first = run(*args, "--steps", 2)
    assert first.exit_code == 0, first.output
    assert f"Starting from {tiny_export}'s G and D" in first.output
    again = run(*args, "--steps", 3)
    assert again.exit_code == 0, again.output
    assert f"Resuming {tmp_path / 'ft'} at step 2" in again.output and "Starting from" not in again.output
    card = json.loads((tmp_path / "ft" / "model.json").read_text())
    assert (card["width"], card["image_size"], card["steps"], card["init"]) == (8, 32, 3, str(tiny_export))
    missing = run("train", "--init", tmp_path / "nothing", "--dataset", few_faces, "--run-dir", tmp_path / "x")
    assert missing.exit_code == 1 and f"Error: Model {tmp_path / 'nothing'} does not exist" in missing.output


@pytest.mark.parametrize(
    "args,message",
    [
        (["--dataset", "{empty}"], "Error: No images (.jpg, .jpeg, .png, .bmp, .webp) found in {empty}"),
        (
            ["--dataset", "not_a_dataset"],
            "Error: 'not_a_dataset' is neither an existing folder nor a TFDS dataset name",
        ),
        (["--dataset", "{empty}", "--image-size", "48"], "Invalid value for '--image-size'"),
    ],
)
def test_train_errors_are_one_line(tmp_path, args, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    args = [a.replace("{empty}", str(empty)) for a in args]
    r = run("train", *args, "--run-dir", tmp_path / "r")
    assert r.exit_code != 0
    assert message.replace("{empty}", str(empty)) in r.output
    assert "Traceback" not in r.output


def test_other_keras_backend_is_refused(tmp_path):
    env = dict(os.environ, KERAS_BACKEND="jax")
    p = subprocess.run(
        [sys.executable, "-m", "tfinpaint.cli", "train", "--dataset", str(tmp_path), "--run-dir", str(tmp_path / "r")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 1
    assert "Error: tfinpaint needs Keras on the TensorFlow backend, but KERAS_BACKEND='jax'" in p.stderr
    assert "Traceback" not in p.stderr


@pytest.fixture()
def face_png(tmp_path, faces_dir):
    """A real held-out face (held out by the tiny run), as PNG."""
    path = tmp_path / "face.png"
    Image.open(faces_dir / "000003.jpg").save(path)
    return path


@pytest.mark.parametrize(
    "mask, share", [("block", 0.2), ("random", 0.6), ("half", 0.4), ("pattern", 0.15)]
)  # share: at least this much of the 54x54 crop is filled (block 1/4, random 80%, half 1/2, pattern ~1/4)
def test_fill_every_mask_kind(tiny_run, face_png, tmp_path, mask, share):
    out = tmp_path / "new" / "folder"
    r = run("fill", face_png, "--mask", mask, "--model", tiny_run, "--out", out, "--iterations", 5, "--panel")
    assert r.exit_code == 0, r.output
    filled = np.asarray(Image.open(out / "face_filled.png"))
    original = np.asarray(Image.open(face_png))
    assert filled.shape == original.shape == (109, 89, 3)
    changed = (filled != original).any(axis=-1)
    assert changed[27:81, 17:71].mean() > share
    # only the region the model sees (the centre 54x54) can change
    assert not changed[:27].any() and not changed[81:].any() and not changed[:, :17].any()
    assert Image.open(out / "face_panel.png").size == (4 * 54 + 3 * 4, 54)


def test_fill_file_mask_and_mask_folder(tiny_run, face_png, tmp_path):
    mask = np.zeros((109, 89), np.uint8)
    mask[40:60, 30:60] = 255  # white = missing
    Image.fromarray(mask).save(tmp_path / "m.png")
    masks_dir = tmp_path / "masks"
    masks_dir.mkdir()
    Image.fromarray(mask).save(masks_dir / "face.png")
    for spec, out in ((tmp_path / "m.png", tmp_path / "a"), (masks_dir, tmp_path / "b")):
        r = run("fill", face_png, "--mask", spec, "--model", tiny_run, "--out", out, "--iterations", 3)
        assert r.exit_code == 0, r.output
        filled = np.asarray(Image.open(out / "face_filled.png"))
        original = np.asarray(Image.open(face_png))
        np.testing.assert_array_equal(filled[mask == 0], original[mask == 0])
        hole = np.zeros((109, 89, 1), np.float32) + (mask[..., None] == 0)
        (expected,) = fill_lib.fill([face_png], tiny_run, hole, iterations=3)  # the mask reached the search as given
        np.testing.assert_array_equal(filled, expected.image)
    r = run(
        "fill",
        face_png,
        "--mask",
        tmp_path / "m.png",
        "--mask-invert",
        "--model",
        tiny_run,
        "--out",
        tmp_path / "c",
        "--iterations",
        1,
    )
    # inverted, every photo pixel outside the crop is missing: 89 x 109 - 54 x 54 of them
    assert r.exit_code != 0 and r.output.strip() == (
        f"Error: The mask of {face_png} has 6785 missing pixels outside the 54x54 region at (17, 27) that the "
        "model sees (celeba preprocessing) (the first at (0, 0))"
    )


def test_fill_any_size_and_mode_keeps_known_pixels(tiny_run, tmp_path, faces_dir):
    face = Image.open(faces_dir / "000002.jpg").resize((178, 218)).convert("RGBA")
    face.save(tmp_path / "big.png")
    r = run(
        "fill", tmp_path / "big.png", "--model", tiny_run, "--out", tmp_path, "--iterations", 3, "--blend", "overlay"
    )
    assert r.exit_code == 0, r.output
    filled = np.asarray(Image.open(tmp_path / "big_filled.png"))
    original = np.asarray(face.convert("RGB"))
    assert filled.shape == (218, 178, 3)
    # block = centre 16x16 of the model's 32x32, i.e. the centre 54x54 of the 108x108 crop
    hole = np.zeros((218, 178), bool)
    hole[55 + 27 : 55 + 81, 35 + 27 : 35 + 81] = True
    np.testing.assert_array_equal(filled[~hole], original[~hole])


def test_fill_errors_name_the_file(tiny_run, face_png, tmp_path):
    (tmp_path / "bad.png").write_text("no image")
    notmodel = tmp_path / "notmodel"
    notmodel.mkdir()
    cases = [
        (["fill", tmp_path / "bad.png", "--model", tiny_run], f"Error: Cannot read image {tmp_path / 'bad.png'}"),
        (["fill", tmp_path / "none.png", "--model", tiny_run], f"Error: Cannot read image {tmp_path / 'none.png'}"),
        (["fill", face_png, "--model", tiny_run, "--mask", "circle"], "Error: Mask 'circle' is neither one of"),
        (["fill", face_png, "--model", tmp_path / "nowhere"], f"Error: Model {tmp_path / 'nowhere'} does not exist"),
        (["fill", face_png, "--model", notmodel], f"Error: {notmodel} is not a tfinpaint model"),
        (
            ["fill", face_png, "--model", "gs://bucket/celeba64"],
            "Error: A model at gs://bucket/celeba64 is read on Apache Beam only (--runner); copy it here to fill here",
        ),
        (
            ["fill", face_png, "--model", tiny_run, "--mask", "s3://bucket/masks"],
            "Error: A mask at s3://bucket/masks is read on Apache Beam only (--runner); copy it here to fill here",
        ),
        (["fill", face_png, "--model", tiny_run, "--align"], f"Error: Model {tiny_run} is not a face model"),
        (
            ["fill", face_png, "--model", tiny_run, "--mask", tmp_path / "bad.png"],
            f"Error: Cannot read mask {tmp_path / 'bad.png'}",
        ),
    ]
    for args, message in cases:
        r = run(*args, "--out", tmp_path / "o", "--iterations", 1)
        assert r.exit_code == 1, (args, r.output)
        assert message in r.output, r.output
        assert "Traceback" not in r.output
        assert len(r.output.strip().splitlines()) == 1, r.output


def test_fill_refines_beyond_z_and_keeps_known_pixels(tiny_run, face_png, tmp_path):
    mask = np.zeros((109, 89), np.uint8)
    mask[40:60, 30:60] = 255  # white = missing
    Image.fromarray(mask).save(tmp_path / "m.png")
    original = np.asarray(Image.open(face_png))
    outs = {}
    for refine in ("none", "generator"):
        out = tmp_path / refine
        args = ("--iterations", 3, "--refine", refine, "--refine-steps", 5, "--refine-lr", 0.003)
        r = run("fill", face_png, "--mask", tmp_path / "m.png", "--model", tiny_run, "--out", out, *args)
        assert r.exit_code == 0, r.output
        outs[refine] = np.asarray(Image.open(out / "face_filled.png"))
        np.testing.assert_array_equal(outs[refine][mask == 0], original[mask == 0])
    # the same z, then G refined on the photo: as the library refines it, and closer to the photo around the hole
    hole = (mask[..., None] == 0).astype(np.float32)
    for refine in ("none", "generator"):
        options = dict(iterations=3, refine=refine, refine_steps=5, refine_lr=0.003)
        (expected,) = fill_lib.fill([face_png], tiny_run, hole, **options)
        np.testing.assert_array_equal(outs[refine], expected.image)
    assert not np.array_equal(outs["generator"], outs["none"])
    for bad, message in (("weights", "Invalid value for '--refine'"), ("-1", "Invalid value for '--refine-steps'")):
        option = "--refine" if message.endswith("'--refine'") else "--refine-steps"
        r = run("fill", face_png, "--model", tiny_run, option, bad, "--out", tmp_path / "o")
        assert r.exit_code == 2 and message in r.output, r.output


def test_fill_min_z_rms_is_the_librarys(tiny_run, face_png, tmp_path):
    r = run("fill", face_png, "--model", tiny_run, "--out", tmp_path, "--iterations", 4, "--min-z-rms", 0.6)
    assert r.exit_code == 0, r.output
    (floored,) = fill_lib.fill([face_png], tiny_run, "block", iterations=4, min_z_rms=0.6)
    (free,) = fill_lib.fill([face_png], tiny_run, "block", iterations=4)
    got = np.asarray(Image.open(tmp_path / "face_filled.png"))
    np.testing.assert_array_equal(got, floored.image)
    assert not np.array_equal(got, free.image)
    r = run("fill", face_png, "--model", tiny_run, "--out", tmp_path / "o", "--min-z-rms", 1)
    assert r.exit_code == 2 and "Invalid value for '--min-z-rms': 1.0 is not in the range 0<=x<1." in r.output


def test_the_pixel_limit_names_the_option_that_lifts_it(tiny_run, tmp_path):
    huge = tmp_path / "huge.png"
    Image.fromarray(np.zeros((20000, 20000), np.uint8)).save(huge)  # 400 megapixels in 0.4 MB
    r = run("fill", huge, "--model", tiny_run, "--out", tmp_path / "out")
    assert r.exit_code == 1
    assert r.output == (
        f"Error: Image {huge} is 20000x20000 (400.0 megapixels), over the limit of 40 megapixels; "
        "pass --max-pixels 400000000 to fill it anyway\n"
    )


def test_fill_does_not_overwrite(tiny_run, face_png, tmp_path):
    (tmp_path / "face_filled.png").write_bytes(b"keep me")
    r = run("fill", face_png, "--model", tiny_run, "--out", tmp_path, "--iterations", 1)
    assert r.exit_code == 0
    assert r.output == f"Skipping 1 of 1 photos already filled in {tmp_path} (--overwrite fills them again)\n"
    assert (tmp_path / "face_filled.png").read_bytes() == b"keep me"
    r = run("fill", face_png, "--model", tiny_run, "--out", tmp_path, "--iterations", 1, "--overwrite")
    assert r.exit_code == 0 and Image.open(tmp_path / "face_filled.png").size == (89, 109)


def test_tensorflow_start_up_lines_stay_out_of_the_terminal(tmp_path):
    # a fresh process, as a user runs it: the error is the only line on stderr
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["TFINPAINT_LOG_DIR"] = str(tmp_path / "logs")
    # a photo that names nothing, or no image, is refused before TensorFlow starts (no start-up log)
    (tmp_path / "bad.png").write_text("no image")
    for name, why in (("nothing.png", "no such file"), ("bad.png", "cannot identify image file")):
        refused = [sys.executable, "-m", "tfinpaint.cli", "fill", str(tmp_path / name)]
        p = subprocess.run(refused, env=env, capture_output=True, text=True, cwd=tmp_path)
        assert p.returncode == 1
        assert len(p.stderr.splitlines()) == 1 and why in p.stderr, p.stderr
        assert p.stderr.startswith(f"Error: Cannot read image {tmp_path / name}: ")
        assert not (tmp_path / "logs").exists()
    # one whose header is whole but whose pixels are cut off is found out after TensorFlow's
    # start, whose lines stay out too
    whole = (ROOT / "examples" / "astronaut.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(whole[: len(whole) // 2])
    cmd = [sys.executable, "-m", "tfinpaint.cli", "fill", str(tmp_path / "cut.png")]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 1
    assert len(p.stderr.splitlines()) == 1, p.stderr
    assert p.stderr.startswith(f"Error: Cannot read image {tmp_path / 'cut.png'}: ")
    assert not list((tmp_path / "logs").iterdir())  # the start-up log is removed once TensorFlow is up
    verbose = subprocess.run(cmd[:3] + ["--verbose"] + cmd[3:], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert verbose.returncode == 1 and len(verbose.stderr.splitlines()) > 1  # TensorFlow's own lines too


@pytest.mark.parametrize(
    "args",
    [
        ["fill", "photo.png", "--model", "nosuch"],
        ["export", "--model", "nosuch", "--out", "out"],
        ["evaluate", "--data", ".", "--model", "nosuch", "--out", "out"],
        ["train-encoder", "nosuch"],
        ["train", "--dataset", ".", "--run-dir", "run", "--init", "nosuch"],
        ["app", "--model", "nosuch"],
    ],
)
def test_a_model_that_is_not_there_is_refused_before_tensorflow_starts(tmp_path, args):
    (tmp_path / "photo.png").write_bytes(b"")
    # the process reports, as it exits, whether TensorFlow was ever imported
    probe = (
        "import atexit, sys; atexit.register(lambda: print('tensorflow' in sys.modules, file=sys.stderr)); "
        "from tfinpaint.cli.main import main; main()"
    )
    p = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 1
    from tfinpaint.locate import shipped_names

    shipped = ", ".join(shipped_names())  # celeba64, celeba64_w64, svhn64
    assert p.stderr.splitlines() == [f"Error: Model nosuch does not exist (shipped models: {shipped})", "False"]
    assert sorted(os.listdir(tmp_path)) == ["photo.png"]  # nothing written


def test_unexpected_errors_are_one_line_with_the_log(monkeypatch, tmp_path, few_faces):
    import importlib

    from tfinpaint import fill as fill_lib

    cli_main = importlib.import_module(main.callback.__module__)  # the module, not the click group

    def broken(*args, **kwargs):
        raise RuntimeError("something inside broke\nsecond line")

    monkeypatch.setattr(cli_main, "LOG_DIR", tmp_path / "logs")
    monkeypatch.setattr(fill_lib, "fill", broken)
    face = sorted(few_faces.iterdir())[0]
    r = CliRunner().invoke(main, ["fill", str(face), "--out", str(tmp_path / "out")])
    assert r.exit_code == 1
    [log] = (tmp_path / "logs").iterdir()
    assert r.output == (
        f"Error: Unexpected RuntimeError: something inside broke (the full traceback is in {log}; "
        "run with --verbose to see it here)\n"
    )
    assert log.read_text().startswith("Traceback (most recent call last):")
    assert "RuntimeError: something inside broke" in log.read_text()
    with pytest.raises(RuntimeError, match="something inside broke"):
        CliRunner().invoke(main, ["--verbose", "fill", str(face)], catch_exceptions=False)
