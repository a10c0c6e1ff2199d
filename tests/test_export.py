import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from tfinpaint import blend, masks, photos
from tfinpaint.cli import main
from tfinpaint.export import ExportError, export, poisson_blend
from tfinpaint.search import SearchSettings, inpaint
from tfinpaint.store import load_model

ROOT = Path(__file__).resolve().parents[1]

# Run in a fresh interpreter: TensorFlow and numpy only, the way TF Serving sees the model.
CLIENT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf

    model = tf.saved_model.load(sys.argv[1])
    inputs = dict(np.load(sys.argv[2]))
    out = {}
    for name in ("serving_default", "inpaint", "generate", "discriminate"):
        sig = model.signatures[name]
        wanted = sig.structured_input_signature[1]
        result = sig(**{k: tf.constant(inputs[f"{name}.{k}"], spec.dtype) for k, spec in wanted.items()})
        out.update({f"{name}.{k}": v.numpy() for k, v in result.items()})
    assert not any(m == "tfinpaint" or m.startswith("tfinpaint.") for m in sys.modules), "imported tfinpaint"
    np.savez(sys.argv[3], **out)
    """
)


def _u8(x):
    return np.clip(np.round((np.asarray(x) + 1.0) * 127.5), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def faces_u8(faces_dir):
    from tfinpaint import data

    files = [faces_dir / f"00000{i}.jpg" for i in range(1, 4)]  # held out by the tiny run
    return np.stack([_u8(data.preprocess_numpy(photos.load_image_file(f), "celeba", 32)) for f in files])


def _serve(version_dir, tmp_path, images, masks3, inpaint_settings, z, discriminated) -> dict:
    """Every signature called once by CLIENT in a fresh process: `serving_default` on `images`
    and `masks3`, `inpaint` on the first of them with `inpaint_settings`; outputs by name."""
    inputs = {
        "serving_default.image": images,
        "serving_default.mask": masks3,
        "inpaint.image": images[:1],
        "inpaint.mask": masks3[:1],
        **{f"inpaint.{k}": v for k, v in inpaint_settings.items()},
        "generate.z": z,
        "discriminate.image": discriminated,
    }
    np.savez(tmp_path / "in.npz", **inputs)
    (tmp_path / "client.py").write_text(CLIENT)
    args = [str(tmp_path / "client.py"), str(version_dir), str(tmp_path / "in.npz"), str(tmp_path / "out.npz")]
    subprocess.run([sys.executable, *args], check=True, cwd=tmp_path)
    return dict(np.load(tmp_path / "out.npz"))


def test_saved_model_cli_lists_the_signatures(tiny_export):
    cli = Path(sys.executable).parent / "saved_model_cli"
    shown = subprocess.run(
        [str(cli), "show", "--all", "--dir", str(tiny_export / "1")], capture_output=True, text=True, check=True
    ).stdout
    for name in ("serving_default", "inpaint", "generate", "discriminate"):
        assert f"signature_def['{name}']" in shown
    assert re.search(r"inputs\['image'\] tensor_info:\s+dtype: DT_UINT8\s+shape: \(-1, 32, 32, 3\)", shown)
    assert re.search(r"inputs\['mask'\] tensor_info:\s+dtype: DT_FLOAT\s+shape: \(-1, 32, 32, 1\)", shown)
    assert re.search(r"inputs\['seed'\] tensor_info:\s+dtype: DT_INT64\s+shape: \(\)", shown)
    assert re.search(r"outputs\['loss'\] tensor_info:\s+dtype: DT_FLOAT\s+shape: \(-1\)", shown)
    card = json.loads((tiny_export / "model.json").read_text())
    assert card["search"]["iterations"] == 20 and card["mask"].startswith("float32 [N, H, W, 1]: 1 = known")


def test_fresh_process_matches_the_python_api(tiny_export, tiny_run, faces_u8, tmp_path):
    run = load_model(tiny_run)
    g, d = run.generator, run.discriminator
    m3 = np.stack([masks.block(32), masks.random(32, 0.8, np.random.default_rng(1)), masks.half(32)])
    z = np.random.default_rng(2).uniform(-1, 1, (5, 16)).astype(np.float32)
    inpaint_settings = {"iterations": 15, "lam": 0.01, "restarts": 3, "seed": 4}
    out = _serve(tiny_export / "1", tmp_path, faces_u8, m3, inpaint_settings, z, faces_u8)
    y = faces_u8.astype(np.float32) / 127.5 - 1.0

    ref = inpaint(y, m3, g, d, iterations=20, restarts=2)  # the card's settings
    np.testing.assert_allclose(out["serving_default.loss"], ref.loss, rtol=1e-4)
    assert np.abs(out["serving_default.generated"].astype(int) - _u8(ref.generated)).max() <= 1
    assert np.abs(out["serving_default.inpainted"].astype(int) - _u8(ref.filled)).max() <= 1  # CG vs scipy
    known = np.broadcast_to(m3 > 0.5, faces_u8.shape)
    np.testing.assert_array_equal(out["serving_default.inpainted"][known], faces_u8[known])

    ref1 = inpaint(y[:1], m3[:1], g, d, iterations=15, lam=0.01, restarts=3, seed=4)  # another batch size
    np.testing.assert_allclose(out["inpaint.loss"], ref1.loss, rtol=1e-4)
    assert np.abs(out["inpaint.inpainted"].astype(int) - _u8(ref1.filled)).max() <= 1

    np.testing.assert_array_equal(out["generate.image"], _u8(g(z, training=False)))
    logits = d(y, training=False).numpy().ravel()
    np.testing.assert_allclose(out["discriminate.logit"], logits, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["discriminate.probability"], 1 / (1 + np.exp(-logits)), rtol=1e-4)


@pytest.mark.parametrize("refine", ["generator", "features"])
def test_served_refinement_matches_the_python_api(tiny_run, faces_u8, tmp_path, refine):
    """An export whose settings refine beyond z serves the refined fill, in a process that never
    imports tfinpaint, as the Python API computes it."""
    run = load_model(tiny_run)
    settings = SearchSettings(iterations=8, refine=refine, refine_steps=12, refine_lr=0.01)
    export(run, tmp_path / "m", settings=settings)
    m2 = np.stack([masks.random(32, 0.8, np.random.default_rng(1)), masks.block(32)])
    z = np.zeros((1, 16), np.float32)
    inpaint_settings = {"iterations": 8, "lam": 0.003, "restarts": 2, "seed": 0}
    out = _serve(tmp_path / "m" / "1", tmp_path, faces_u8[:2], m2, inpaint_settings, z, faces_u8[:1])
    y = faces_u8[:2].astype(np.float32) / 127.5 - 1.0
    ref = inpaint(y, m2, run.generator, run.discriminator, settings)
    z_only = inpaint(y, m2, run.generator, run.discriminator, settings, refine="none")
    np.testing.assert_allclose(out["serving_default.loss"], ref.loss, rtol=1e-3)
    assert (out["serving_default.loss"] < z_only.loss).all()
    assert np.abs(out["serving_default.generated"].astype(int) - _u8(ref.generated)).max() <= 1
    known = np.broadcast_to(m2 > 0.5, y.shape)
    np.testing.assert_array_equal(out["serving_default.inpainted"][known], faces_u8[:2][known])
    ref1 = inpaint(y[:1], m2[:1], run.generator, run.discriminator, settings, restarts=2)
    np.testing.assert_allclose(out["inpaint.loss"], ref1.loss, rtol=1e-3)


def test_served_search_keeps_the_cards_floor_on_z(tiny_run, faces_u8, tmp_path):
    """An export whose settings put a floor under z's length (`min_z_rms`) serves the search
    with that floor, in a process that never imports tfinpaint, as the Python API runs it."""
    run = load_model(tiny_run)
    settings = SearchSettings(iterations=10, refine="none", min_z_rms=0.7)
    export(run, tmp_path / "m", settings=settings)
    assert json.loads((tmp_path / "m" / "model.json").read_text())["search"]["min_z_rms"] == 0.7
    m2 = np.stack([masks.block(32), masks.half(32)])
    inpaint_settings = {"iterations": 10, "lam": 0.003, "restarts": 1, "seed": 0}
    out = _serve(
        tmp_path / "m" / "1", tmp_path, faces_u8[:2], m2, inpaint_settings, np.zeros((1, 16), np.float32), faces_u8[:1]
    )
    y = faces_u8[:2].astype(np.float32) / 127.5 - 1.0
    ref = inpaint(y, m2, run.generator, run.discriminator, settings)
    free = inpaint(y, m2, run.generator, run.discriminator, settings, min_z_rms=0.0)
    assert np.sqrt(np.mean(ref.z**2, axis=1)).min() > 0.65 > np.sqrt(np.mean(free.z**2, axis=1)).max()
    np.testing.assert_allclose(out["serving_default.loss"], ref.loss, rtol=1e-4)
    assert np.abs(out["serving_default.generated"].astype(int) - _u8(ref.generated)).max() <= 1
    assert np.abs(out["serving_default.generated"].astype(int) - _u8(free.generated)).max() > 10


def test_wrong_shape_or_dtype_names_the_input(tiny_export, faces_u8):
    sig = tf.saved_model.load(str(tiny_export / "1")).signatures["serving_default"]
    good_mask = tf.constant(np.ones((3, 32, 32, 1), np.float32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="input image must be uint8 \\[N, 32, 32, 3\\]"):
        sig(image=tf.zeros([3, 16, 16, 3], tf.uint8), mask=good_mask)
    with pytest.raises(tf.errors.InvalidArgumentError, match="input mask must be float32 \\[N, 32, 32, 1\\]"):
        sig(image=tf.constant(faces_u8), mask=tf.ones([2, 32, 32, 1]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="input #0.*expected to be a uint8 tensor"):
        sig(image=tf.zeros([3, 32, 32, 3], tf.float32), mask=good_mask)
    gen = tf.saved_model.load(str(tiny_export / "1")).signatures["generate"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="input z must be float32 \\[N, 16\\]"):
        gen(z=tf.zeros([1, 100]))


def test_in_graph_poisson_agrees_with_scipy(rng):
    src = rng.uniform(-1, 1, (4, 24, 24, 3)).astype(np.float32)
    tgt = rng.uniform(-1, 1, (4, 24, 24, 3)).astype(np.float32)
    corner = np.ones((24, 24, 1), np.float32)
    corner[:10, :7] = 0
    m = np.stack([masks.block(24), masks.random(24, 0.8, rng), corner, np.ones((24, 24, 1), np.float32)])
    ours = poisson_blend(tf.constant(src), tf.constant(tgt), tf.constant(m)).numpy()
    ref = blend.blend_batch(src, tgt, m)
    assert np.abs(ours - ref).max() * 127.5 < 1.0 / 255 * 127.5  # within 1/255 of the [0, 1] range
    np.testing.assert_array_equal(ours[np.broadcast_to(m > 0.5, ours.shape)], tgt[np.broadcast_to(m > 0.5, ours.shape)])


def test_readme_request_bodies_run_through_the_signatures(tiny_export, tmp_path, monkeypatch):
    """Builds each REST body exactly as the serving guide does, then calls its signature with
    it. The tiny model is 32x32 with 16 latents, so the guide's sizes are scaled to it."""
    readme = (ROOT / "docs" / "serving.md").read_text()
    blocks = re.findall(r"<!-- request: (\w+) -->\n```python\n(.*?)```", readme, re.S)
    assert [name for name, _ in blocks] == ["serving_default", "inpaint", "generate", "discriminate"]
    model = tf.saved_model.load(str(tiny_export / "1"))
    monkeypatch.chdir(ROOT)
    scope: dict = {}
    for name, code in blocks:
        code = code.replace("(64, 64)", "(32, 32)").replace("(64, 64, 1)", "(32, 32, 1)")
        code = code.replace("mask[16:48, 16:48]", "mask[8:24, 8:24]").replace("(4, 100)", "(4, 16)")
        exec(code, scope)
        body = json.loads(json.dumps(scope["body"]))  # what travels over HTTP
        assert body["signature_name"] == name
        sig = model.signatures[name]
        specs = sig.structured_input_signature[1]
        assert set(body["inputs"]) == set(specs)
        result = sig(**{k: tf.constant(v, specs[k].dtype) for k, v in body["inputs"].items()})
        assert all(np.isfinite(v.numpy().astype(float)).all() for v in result.values())


def test_export_refuses_to_replace_and_leaves_nothing_half_written(tiny_run, tmp_path, monkeypatch):
    base = tmp_path / "m"
    export(tiny_run, base)
    replace = r"1 exists; pass `overwrite=True` to replace it, or choose another `version`"
    with pytest.raises(ExportError, match=replace):
        export(tiny_run, base)
    export(tiny_run, base, version=2)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        export(tiny_run, base, version=3)
    assert sorted(p.name for p in base.iterdir()) == ["1", "2", "model.json"]
    monkeypatch.undo()
    assert load_model(base).card.extra["version"] == 2  # the newest version is the one used


def test_export_refuses_another_model_into_a_base_that_serves_one(tiny_run, tmp_path):
    import shutil

    import keras

    other = tmp_path / "other"
    shutil.copytree(tiny_run, other)
    g = keras.saving.load_model(other / "generator.keras")
    g.to_image.bias.assign(g.to_image.bias + 0.1)  # the same architecture and data, other weights
    g.save(other / "generator.keras")
    base = tmp_path / "served"
    export(tiny_run, base)
    export(tiny_run, base, version=2, settings=SearchSettings(iterations=3))  # the same model again: fine
    with pytest.raises(ExportError) as e:
        export(other, base, version=3)
    assert str(e.value) == (
        f"{base} already serves another model (version 2; its weights differ): TF Serving would switch to this "
        "one at the next version. Export to a new base path, or pass `force=True` to add it anyway"
    )
    assert sorted(p.name for p in base.iterdir()) == ["1", "2", "model.json"]
    export(other, base, version=3, force=True)
    export(other, tmp_path / "new", version=1)  # a new base path
    export(other, tmp_path / "new2", version=1)
    export(tiny_run, tmp_path / "new2", version=1, overwrite=True)  # replacing the only version: one model still
    r = CliRunner().invoke(main, ["export", "--model", str(tiny_run), "--out", str(tmp_path / "new"), "--version", "2"])
    assert r.exit_code == 1 and "already serves another model (version 1; its weights differ)" in r.output
    r = CliRunner().invoke(
        main, ["export", "--model", str(tiny_run), "--out", str(tmp_path / "new"), "--version", "2", "--force"]
    )
    assert r.exit_code == 0, r.output


def test_served_generate_refuses_a_non_finite_z(tiny_export):
    gen = tf.saved_model.load(str(tiny_export / "1")).signatures["generate"]
    for bad in (np.inf, np.nan):
        z = np.zeros((2, 16), np.float32)
        z[1, 3] = bad
        with pytest.raises(tf.errors.InvalidArgumentError, match="input z must be finite"):
            gen(z=tf.constant(z))
    assert gen(z=tf.zeros([2, 16]))["image"].shape == (2, 32, 32, 3)


def test_export_command(tiny_run, tmp_path):
    runner = CliRunner()
    r = runner.invoke(main, ["export", "--model", str(tiny_run), "--out", str(tmp_path / "sm"), "--iterations", "7"])
    assert r.exit_code == 0, r.output
    assert f"Wrote {tmp_path / 'sm' / '1'}" in r.output
    assert json.loads((tmp_path / "sm" / "model.json").read_text())["search"]["iterations"] == 7
    r = runner.invoke(main, ["export", "--model", str(tiny_run), "--out", str(tmp_path / "sm")])
    # the library's message names its parameters; the command line, its options
    assert r.exit_code == 1
    replace = "exists; pass --overwrite to replace it, or choose another --version"
    assert r.output == f"Error: {tmp_path / 'sm' / '1'} {replace}\n"
    r = runner.invoke(main, ["export", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "x")])
    assert r.exit_code == 1 and f"Error: Model {tmp_path / 'nope'} does not exist" in r.output


def test_fill_from_an_exported_model(tiny_export, tiny_run, faces_u8):
    exported = load_model(tiny_export)
    run = load_model(tiny_run)
    g, d = run.generator, run.discriminator
    y = faces_u8[:1].astype(np.float32) / 127.5 - 1.0
    a = inpaint(y, masks.block(32), exported.generator, exported.discriminator, iterations=10)
    b = inpaint(y, masks.block(32), g, d, iterations=10)
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-4)
    np.testing.assert_allclose(a.filled, b.filled, atol=1e-4)


def test_tf1_session_loader_runs_it_like_tf_serving(tiny_export, faces_u8, tmp_path):
    """saved_model_cli run loads the SavedModel into a TF1 session, as TF Serving's C++
    loader does: every variable the graph reads must be restored by name."""
    np.save(tmp_path / "image.npy", faces_u8[:2])
    np.save(tmp_path / "mask.npy", np.stack([masks.block(32)] * 2))
    cli = Path(sys.executable).parent / "saved_model_cli"
    subprocess.run(
        [
            str(cli),
            "run",
            "--dir",
            str(tiny_export / "1"),
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--inputs",
            f"image={tmp_path / 'image.npy'};mask={tmp_path / 'mask.npy'}",
            "--outdir",
            str(tmp_path / "out"),
        ],
        check=True,
        capture_output=True,
    )
    filled = np.load(tmp_path / "out" / "inpainted.npy")
    assert filled.shape == (2, 32, 32, 3) and filled.dtype == np.uint8
    known = np.broadcast_to(masks.block(32) > 0.5, filled.shape)
    np.testing.assert_array_equal(filled[known], faces_u8[:2][known])
    assert np.load(tmp_path / "out" / "loss.npy").shape == (2,)


def test_served_search_raises_ds_logit_with_no_known_pixel(tiny_export):
    """The serving graph's perceptual term has the Python search's sign: with nothing known,
    the search can only make G(z) look more real to D."""
    sigs = tf.saved_model.load(str(tiny_export / "1")).signatures
    image = tf.zeros([2, 32, 32, 3], tf.uint8)
    mask = tf.zeros([2, 32, 32, 1])
    common = dict(image=image, mask=mask, lam=tf.constant(1.0), restarts=tf.constant(1), seed=tf.constant(0, tf.int64))
    start = sigs["inpaint"](iterations=tf.constant(0), **common)["generated"]
    found = sigs["inpaint"](iterations=tf.constant(40), **common)["generated"]
    before = sigs["discriminate"](image=start)["logit"].numpy()
    after = sigs["discriminate"](image=found)["logit"].numpy()
    assert (after > before + 0.05).all(), (before, after)


def test_export_killed_midway_is_cleaned_up_by_the_next(tiny_run, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    base = tmp_path / "m"
    cmd = [sys.executable, "-m", "tfinpaint.cli", "export", "--model", str(tiny_run), "--out", str(base)]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    leftover = base / f".1.{p.pid}.tmp"
    deadline = time.monotonic() + 240
    while not leftover.exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)  # kill -9 while the SavedModel is being written
    p.wait()
    assert leftover.exists() and not (base / "1").exists()
    export(tiny_run, base)
    assert sorted(x.name for x in base.iterdir()) == ["1", "model.json"]


def test_served_masks_are_thresholded_and_bad_ones_refused(tiny_export, faces_u8):
    sig = tf.saved_model.load(str(tiny_export / "1")).signatures["inpaint"]
    settings = dict(iterations=tf.constant(3), lam=tf.constant(0.003), restarts=tf.constant(1))
    binary = masks.block(32)[None].repeat(3, axis=0)
    soft = np.where(binary > 0.5, 0.5, 0.49).astype(np.float32)  # the same mask, thresholded at 0.5
    run = lambda m: sig(image=tf.constant(faces_u8), mask=tf.constant(m), seed=tf.constant(1, tf.int64), **settings)
    exact, thresholded = run(binary), run(soft)
    for k in exact:
        np.testing.assert_array_equal(exact[k].numpy(), thresholded[k].numpy())
    for bad in (np.nan, np.inf):
        broken = binary.copy()
        broken[1, 3, 4, 0] = bad
        with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape("input mask must be finite")):
            run(broken)
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape("at least one image (N >= 1)")):
        sig(
            image=tf.zeros([0, 32, 32, 3], tf.uint8),
            mask=tf.zeros([0, 32, 32, 1]),
            seed=tf.constant(1, tf.int64),
            **settings,
        )


THREADS = textwrap.dedent(
    """
    import sys
    from concurrent.futures import ThreadPoolExecutor
    import numpy as np
    import tensorflow as tf

    sig = tf.saved_model.load(sys.argv[1]).signatures["inpaint"]
    images = np.load(sys.argv[2])
    def request(i):  # eight different requests: own image, own mask, own seed
        mask = np.ones((1, 32, 32, 1), np.float32)
        mask[0, 4 + i : 20 + i, 6 : 22 + i] = 0
        out = sig(image=tf.constant(images[i % len(images)][None]), mask=tf.constant(mask), iterations=tf.constant(25),
                  lam=tf.constant(0.003), restarts=tf.constant(2), seed=tf.constant(i, tf.int64))
        return {k: v.numpy() for k, v in out.items()}
    sequential = [request(i) for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        concurrent = list(pool.map(request, range(8)))
    for a, b in zip(sequential, concurrent):
        for k in a:
            assert np.array_equal(a[k], b[k]), k
    assert len({r["inpainted"].tobytes() for r in sequential}) == 8
    assert not any(m == "tfinpaint" or m.startswith("tfinpaint.") for m in sys.modules), "imported tfinpaint"
    print("identical")
    """
)


def test_eight_threads_at_once_return_what_sequential_calls_return(tiny_export, faces_u8, tmp_path):
    np.save(tmp_path / "images.npy", faces_u8)
    done = subprocess.run(
        [sys.executable, "-c", THREADS, str(tiny_export / "1"), str(tmp_path / "images.npy")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "identical"
