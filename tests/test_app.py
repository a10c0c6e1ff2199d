"""`tfinpaint app`: a real server on a free loopback port, driven by Gradio's Python client
and by a real headless Chromium (Debian's, through Playwright; no browser download)."""

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from tfinpaint import fill as fill_lib
from tfinpaint.cli import main

gradio_client = pytest.importorskip("gradio_client", reason='the app tests need the app extra: pip install -e ".[app]"')

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "astronaut_photo.jpg"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# How Chromium runs here: as root, headless, and with nothing calling out of a closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EYES = np.s_[93:117, 195:255]  # a stroke over the astronaut's eyes, inside her face's frame


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


LOGS = {}  # the server's terminal output, by URL


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`tfinpaint app` offering both shipped models, in its own process."""
    port = _free_port()
    log = tmp_path_factory.mktemp("app") / "app.log"
    LOGS[f"http://127.0.0.1:{port}/"] = log
    args = [sys.executable, "-m", "cli", "app", "--port", str(port), "--model", "celeba64", "--model", "svhn64"]
    with open(log, "w") as out:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env={**os.environ})
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f"tfinpaint app did not start:\n{log.read_text()}")
            time.sleep(1)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def _editor(photo: Path, layer: Path | None = None) -> dict:
    files = [gradio_client.handle_file(str(layer))] if layer else []
    return {"background": gradio_client.handle_file(str(photo)), "layers": files, "composite": None}


def _fill(url, editor, kind="painted", model="celeba64", iterations=20, min_z_rms=0.0):
    client = gradio_client.Client(url, verbose=False)
    return client.predict(editor, kind, model, iterations, 0.003, min_z_rms, 1, 0, "poisson", "auto", api_name="/fill")


@pytest.fixture(scope="module")
def stroke(tmp_path_factory) -> Path:
    """An RGBA layer with the brush's stroke over her eyes, as the editor sends it."""
    layer = np.zeros((512, 512, 4), np.uint8)
    layer[EYES] = (255, 0, 255, 153)
    path = tmp_path_factory.mktemp("layer") / "layer.png"
    Image.fromarray(layer).save(path)
    return path


def test_fill_through_the_client_keeps_every_pixel_outside_the_strokes(server, stroke, tmp_path):
    photo = np.asarray(Image.open(EXAMPLE))
    Image.fromarray(photo).save(tmp_path / "photo.png")
    result, generated, masked, curve, download = _fill(server, _editor(tmp_path / "photo.png", stroke))
    out = np.asarray(Image.open(result))
    assert out.shape == (512, 512, 3)
    np.testing.assert_array_equal(np.asarray(Image.open(download)), out)
    hole = np.zeros((512, 512), bool)
    hole[EYES] = True
    np.testing.assert_array_equal(out[~hole], photo[~hole])
    assert (out[hole] != photo[hole]).any(axis=-1).mean() > 0.9
    assert np.asarray(Image.open(generated)).shape == (256, 256, 3)
    shown = np.asarray(Image.open(masked))
    assert (shown == 255).all(axis=-1).mean() > 0.05  # her eyes, white, in the model's view
    losses = [row[1] for row in curve["data"]]
    # a thin stroke (about 6 of the model's pixels tall) is a scattered hole: the z search's 20
    # steps, then the 100 of the refinement beyond z
    assert len(losses) == 120 and losses[-1] < 0.5 * losses[0] and losses[-1] < losses[19]


def test_mask_kinds_models_and_mistakes(server, tmp_path, faces_dir):
    digit = ROOT / "examples" / "house_number.png"
    result, *_ = _fill(server, _editor(digit), kind="half", model="svhn64", iterations=5)
    out, photo = np.asarray(Image.open(result)), np.asarray(Image.open(digit).convert("RGB"))
    assert out.shape == photo.shape
    np.testing.assert_array_equal(out[:, 16:], photo[:, 16:])  # the left half was filled
    sharper, *_ = _fill(server, _editor(digit), kind="half", model="svhn64", iterations=5, min_z_rms=0.55)
    sharper = np.asarray(Image.open(sharper))
    np.testing.assert_array_equal(sharper[:, 16:], photo[:, 16:])
    (expected,) = fill_lib.fill([photo], "svhn64", "half", iterations=5, min_z_rms=0.55)
    np.testing.assert_array_equal(sharper, expected.image)  # the dial reaches the search
    assert not np.array_equal(sharper, out)
    with pytest.raises(gradio_client.exceptions.AppError, match="Paint over what to fill"):
        _fill(server, _editor(digit), kind="painted", model="svhn64")
    with pytest.raises(gradio_client.exceptions.AppError, match="missing pixels outside every face"):
        layer = np.zeros((512, 512, 4), np.uint8)
        layer[480:, :40] = (255, 0, 255, 153)  # the flag's corner, far from her face
        Image.fromarray(layer).save(tmp_path / "corner.png")
        _fill(server, _editor(EXAMPLE, tmp_path / "corner.png"))


def test_bad_uploads_get_a_message_in_the_page_and_no_traceback(server, tmp_path):
    digit = ROOT / "examples" / "house_number.png"
    (tmp_path / "notes.png").write_text("these are my notes, not a photo\n")
    (tmp_path / "empty.png").write_bytes(b"")
    Image.fromarray(np.zeros((8000, 6000), np.uint8)).save(tmp_path / "huge.png")  # 48 MP: over fill's 40
    exif = Image.Exif()
    exif[0x0112] = 8  # a phone's portrait: stored on its side
    Image.open(digit).convert("RGB").transpose(Image.Transpose.ROTATE_270).save(tmp_path / "phone.jpg", exif=exif)
    cases = {
        "notes.png": "The upload is not an image that can be read (cannot identify image file",
        "empty.png": "The upload is not an image that can be read (cannot identify image file",
        "huge.png": "The photo is 6000x8000 (48.0 megapixels), over the limit of 40 megapixels, the limit of "
        "tfinpaint fill as well",
    }
    for name, message in cases.items():
        with pytest.raises(gradio_client.exceptions.AppError) as e:
            _fill(server, _editor(tmp_path / name), kind="half", model="svhn64", iterations=1)
        assert str(e.value).startswith(message), (name, str(e.value))
    result, *_ = _fill(server, _editor(tmp_path / "phone.jpg"), kind="half", model="svhn64", iterations=1)
    assert np.asarray(Image.open(result)).shape == np.asarray(Image.open(digit)).shape  # upright, as shown
    log = LOGS[server].read_text()
    assert "Traceback" not in log, log[log.find("Traceback") :][:4000]  # and the server still answers: it just did


def test_two_tabs_at_once_get_their_own_results(server, stroke, faces_dir):
    face = faces_dir / "000050.jpg"
    results = {}

    def one(name, editor, kind):
        results[name] = _fill(server, editor, kind=kind, iterations=10)[0]

    threads = [
        threading.Thread(target=one, args=("astronaut", _editor(EXAMPLE, stroke), "painted")),
        threading.Thread(target=one, args=("celeba", _editor(face), "block")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert np.asarray(Image.open(results["astronaut"])).shape == (512, 512, 3)
    assert np.asarray(Image.open(results["celeba"])).shape == (109, 89, 3)


def test_without_the_app_extra_the_command_says_which_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)  # as if it were not installed
    monkeypatch.delitem(sys.modules, "tfinpaint.app", raising=False)
    r = CliRunner().invoke(main, ["app"])
    assert r.exit_code == 1
    assert (
        r.output.strip()
        == 'Error: tfinpaint app needs the app extra: pip install -e ".[app]" (or pip install "tfinpaint[app]")'
    )


def test_in_a_real_browser_paint_a_stroke_and_fill(server, tmp_path):
    """Open the page in headless Chromium, upload the photo, paint a stroke over her eyes
    with the mouse, press Fill, and wait for the result."""
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian's chromium package; .ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs Playwright (the test extra)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server)
        page.wait_for_load_state("networkidle")
        # the editor has the photo once its "Upload an image" placeholder is gone; a file set
        # while the page was still starting was sometimes dropped, so it is set again then
        placeholder = page.locator("#photo").get_by_text("Upload an image")
        for attempt in range(3):
            page.set_input_files("#photo input[type=file]", str(EXAMPLE))
            try:
                placeholder.wait_for(state="hidden", timeout=20_000)
                break
            except sync_api.TimeoutError:
                if attempt == 2:
                    raise
        page.wait_for_timeout(500)  # the canvas is drawn in the next frames
        box = page.locator("#photo canvas").first.bounding_box()
        zoom = float(page.locator("#photo").get_by_text("%").first.inner_text().strip("%")) / 100
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(cx + (200 - 256) * zoom, cy + (105 - 256) * zoom)
        page.mouse.down()
        for x in range(200, 252, 4):
            page.mouse.move(cx + (x - 256) * zoom, cy + (105 - 256) * zoom)
        page.mouse.up()
        page.screenshot(path=str(tmp_path / "painted.png"))
        page.click("#fill")
        page.wait_for_selector("#result img, .toast-body.error", timeout=240_000)
        if not page.locator("#result img").count():
            page.screenshot(path=str(tmp_path / "error.png"))
            pytest.fail(f"the page said: {page.locator('.toast-body.error').first.inner_text()} (see {tmp_path})")
        page.wait_for_timeout(1000)
        page.screenshot(path=str(tmp_path / "app.png"), full_page=True)
        src = page.locator("#result img").first.get_attribute("src")
        browser.close()
    with urllib.request.urlopen(src) as response:
        (tmp_path / "result.png").write_bytes(response.read())
    out = np.asarray(Image.open(tmp_path / "result.png").convert("RGB"))
    photo = np.asarray(Image.open(EXAMPLE))
    changed = (out != photo).any(axis=-1)
    rows, cols = np.nonzero(changed)
    assert out.shape == (512, 512, 3) and changed.sum() > 500
    assert 60 < rows.min() and rows.max() < 150 and 160 < cols.min() and cols.max() < 300  # only around the stroke
    assert (tmp_path / "app.png").stat().st_size > 10_000


def test_a_busy_port_is_one_line_naming_it_and_the_option():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        p = subprocess.run(
            [sys.executable, "-m", "cli", "app", "--port", str(port), "--model", "svhn64"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines()[-1] == (
        f"Error: Cannot listen on 127.0.0.1:{port} (Address already in use); choose another port with --port"
    )
