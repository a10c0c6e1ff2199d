"""`tfinpaint app`: a local web page to paint the hole of a photo and watch it fill (Gradio).

The page has no inpainting of its own: Fill calls `fill.fill`, the function the command
line uses, on the uploaded photo (at its own size; a face model's photos aligned as
`fill` aligns them) with the painted strokes as the mask, or a generated mask kind. Each
request gets its own results (nothing is shared between browser tabs but the loaded
models), and requests queue, so two fills never run at once on a small CPU.

Needs the `app` extra (`pip install -e ".[app]"`).
"""

from __future__ import annotations

import os
import tempfile
import types
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from the user's machine

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402  (a Gradio dependency, for its plots)
from gradio.data_classes import FileData  # noqa: E402
from PIL import Image, ImageOps, UnidentifiedImageError  # noqa: E402

from tfinpaint import fill as fill_lib  # noqa: E402
from tfinpaint import images as images_lib  # noqa: E402
from tfinpaint import store  # noqa: E402
from tfinpaint.constants import ALIGNS, BLENDS, MASK_KINDS, MAX_PIXELS  # noqa: E402
from tfinpaint.errors import TfinpaintError  # noqa: E402

PAINTED = "painted"
MASK_CHOICES = (PAINTED, *MASK_KINDS)
# Brush strokes show in this colour, half transparent, over the photo.
STROKE = ("#ff00ff", 0.6)


def _refusal(message: str) -> gr.Error:
    """A message in the page for a mistake of the user's; the server's terminal stays quiet."""
    return gr.Error(message, print_exception=False)


def read_upload(editor: gr.ImageEditor, file, flatten_on_white: bool = False) -> np.ndarray | None:
    """The editor's reading of an upload, made `tfinpaint fill`'s: over the pixel limit refused
    from its header (the page may listen on 0.0.0.0), turned by its EXIF orientation, and a
    file that is no image, or an empty one, refused in one line in the page (Gradio's own
    reading printed a traceback in the server's terminal). Set on the editor instance: a
    subclass of a Gradio component makes Gradio write a stub file beside this module."""
    if file is None:
        return None
    source = file.path if isinstance(file, FileData) else BytesIO(file)
    try:
        with images_lib.open_image(source, MAX_PIXELS) as im:
            return np.asarray(ImageOps.exif_transpose(im).convert(editor.image_mode))
    except images_lib.TooLarge as e:
        raise _refusal(f"The photo is {e}, the limit of tfinpaint fill as well") from None
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise _refusal(f"The upload is not an image that can be read ({e})") from None


class Models:
    """The models the page offers, loaded on first use and kept."""

    def __init__(self, specs: Sequence[str]):
        self.specs = list(dict.fromkeys(specs))
        self._loaded: dict[str, store.Model] = {}

    def get(self, spec: str) -> store.Model:
        if spec not in self.specs:
            raise _refusal(f"Unknown model {spec!r}; this page offers {', '.join(self.specs)}")
        if spec not in self._loaded:
            self._loaded[spec] = store.load_model(spec)
        return self._loaded[spec]


def painted_mask(editor: dict, shape: tuple[int, int]) -> np.ndarray:
    """The mask `[H, W, 1]` (1 = known) of the strokes painted over a photo of `shape`:
    every pixel any layer covers is missing."""
    missing = np.zeros(shape, bool)
    for layer in editor.get("layers") or []:
        if layer is None:
            continue
        layer = np.asarray(layer)
        alpha = layer[..., 3] > 0 if layer.ndim == 3 and layer.shape[-1] == 4 else layer.max(axis=-1) > 0
        if alpha.shape != shape:
            raise _refusal(f"The painted layer is {alpha.shape[1]}x{alpha.shape[0]}, the photo {shape[1]}x{shape[0]}")
        missing |= alpha
    return (~missing).astype(np.float32)[..., None]


def photo_of(editor: dict | None) -> np.ndarray:
    """The uploaded photo as uint8 `[H, W, 3]` (or `[H, W]` grayscale); transparency is dropped."""
    if not editor or editor.get("background") is None:
        raise _refusal("Upload a photo first")
    photo = np.asarray(editor["background"])
    if photo.ndim == 3 and photo.shape[-1] == 4:
        photo = photo[..., :3]
    if photo.ndim == 3 and photo.shape[-1] == 1:
        photo = photo[..., 0]
    return np.ascontiguousarray(photo.astype(np.uint8))


def run_fill(
    models: Models,
    editor: dict | None,
    mask_kind: str,
    model_spec: str,
    iterations: int,
    lam: float,
    min_z_rms: float,
    restarts: int,
    seed: int,
    blend: str,
    align: str,
    progress: gr.Progress | None = None,
):
    """One Fill: (the result at the photo's size, G(z), the masked input as the model saw
    it, the loss curve, the result's PNG file)."""
    photo = photo_of(editor)
    mask = painted_mask(editor, photo.shape[:2]) if mask_kind == PAINTED else mask_kind
    if mask_kind == PAINTED and mask.min() > 0.5:
        raise _refusal(f"Paint over what to fill, or choose a mask kind other than {PAINTED!r}")
    model = models.get(model_spec)

    def report(label: str, iteration: int, total: int, loss: float) -> None:
        if progress is not None:
            progress((iteration, total), desc=f"{label}: iteration {iteration} of {total}, loss {loss:.2f}")

    try:
        (result,) = fill_lib.fill(
            [photo],
            model,
            mask,
            iterations=int(iterations),
            lam=float(lam),
            min_z_rms=float(min_z_rms),
            restarts=int(restarts),
            seed=int(seed),
            blend=blend,
            align=align,
            progress=report,
            errors="report",
        )
    except TfinpaintError as e:
        raise _refusal(str(e)) from None
    if isinstance(result, fill_lib.Failed):
        raise _refusal(result.message)
    if result.warning:
        gr.Warning(result.warning)
    view = result.views[0]
    masked = np.where(view.mask > 0.5, images_lib.to_uint8(view.image), 255).astype(np.uint8)
    curve = {"iteration": np.arange(1, len(view.history) + 1), "loss": view.history.astype(float)}
    out = Path(tempfile.mkdtemp(prefix="tfinpaint-app-")) / "filled.png"
    images_lib.save_png(out, result.image)
    image = result.image[..., 0] if result.image.shape[-1] == 1 else result.image
    return image, _enlarged(images_lib.to_uint8(view.generated)), _enlarged(masked), pd.DataFrame(curve), str(out)


def _enlarged(image: np.ndarray, side: int = 256) -> np.ndarray:
    """A model-sized image shown at `side` pixels (nearest: each model pixel stays visible)."""
    return np.asarray(Image.fromarray(image).resize((side, side), Image.NEAREST))


def build(model_specs: Sequence[str]) -> gr.Blocks:
    """The page, offering `model_specs` (shipped names, run or export folders)."""
    models = Models(model_specs)
    card = store.load_card(models.specs[0])[1]
    defaults = card.search_settings()
    with gr.Blocks(title="tfinpaint") as page:
        gr.Markdown(
            "# tfinpaint\nUpload a photo, paint over what to fill (or choose a mask kind), press **Fill**. "
            "Semantic image inpainting with a DCGAN prior (Yeh et al., 2016)."
        )
        with gr.Row():
            with gr.Column():
                editor = gr.ImageEditor(
                    label="Photo (paint the hole)",
                    type="numpy",
                    image_mode="RGBA",
                    format="png",
                    sources=("upload", "clipboard"),
                    transforms=(),
                    layers=False,
                    brush=gr.Brush(default_size=24, colors=[STROKE], color_mode="fixed"),
                    eraser=gr.Eraser(default_size=24),
                    elem_id="photo",
                )
                editor.convert_and_format_image = types.MethodType(read_upload, editor)
                mask_kind = gr.Radio(list(MASK_CHOICES), value=PAINTED, label="Mask", elem_id="mask-kind")
                model_spec = gr.Dropdown(models.specs, value=models.specs[0], label="Model")
                with gr.Accordion("Advanced", open=False):
                    iterations = gr.Slider(1, 3000, value=defaults.iterations, step=1, label="Iterations")
                    lam = gr.Number(value=defaults.lam, label="λ (perceptual loss weight)")
                    min_z_rms = gr.Slider(
                        0.0,
                        0.95,
                        value=defaults.min_z_rms,
                        step=0.01,
                        label="Least z length (rms; 0.5-0.58: sharper, less averaged fills at some PSNR)",
                    )
                    restarts = gr.Slider(1, 8, value=defaults.restarts, step=1, label="Restarts")
                    seed = gr.Number(value=0, precision=0, label="Seed")
                    blend = gr.Radio(list(BLENDS), value="poisson", label="Blend")
                    align = gr.Radio(list(ALIGNS), value="auto", label="Align faces")
                button = gr.Button("Fill", variant="primary", elem_id="fill")
            with gr.Column():
                result = gr.Image(label="Result", type="numpy", format="png", elem_id="result")
                with gr.Row():
                    generated = gr.Image(label="G(ẑ)", type="numpy", format="png")
                    masked = gr.Image(label="Masked input, as the model sees it", type="numpy", format="png")
                curve = gr.LinePlot(x="iteration", y="loss", label="Loss")
                download = gr.File(label="Result (PNG)")

        def on_fill(*inputs, progress=gr.Progress()):  # noqa: B008  (how Gradio hands over its progress bar)
            return run_fill(models, *inputs, progress=progress)

        button.click(
            on_fill,
            [editor, mask_kind, model_spec, iterations, lam, min_z_rms, restarts, seed, blend, align],
            [result, generated, masked, curve, download],
            api_name="fill",
            concurrency_limit=1,
        )
    return page


def serve(model_specs: Sequence[str], host: str = "127.0.0.1", port: int = 7860) -> None:
    """Serve the page until interrupted."""
    page = build(model_specs)
    page.queue(default_concurrency_limit=1)
    page.launch(server_name=host, server_port=port, ssr_mode=False, show_error=True)
