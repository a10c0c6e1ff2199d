"""Faces in photos: five-landmark detection, and the model's square view placed on a face.

A face model's card holds a landmark template: where the eyes, the nose and the mouth's
corners of its training images lie, as fractions of the model's square view. A `Frame`
is that view placed in a photo by the similarity transform (rotation, scale and
translation; no shear) that takes a detected face's five landmarks onto the template by
least squares (Umeyama, 1991).

Into the frame, a photo is sampled bilinearly at (at least) its own scale and then
averaged over exact blocks down to the model's size, so nothing aliases; a model pixel
counts as known only if every photo pixel it was sampled from is known, so no value of a
hole leaks into the search. Out of the frame, G(z) is resized (Pillow's bicubic) to the
frame's size in the photo and sampled bilinearly at the photo's own pixels.

Detection is MTCNN (Zhang et al., 2016) from the `mtcnn` package, whose weights ship
inside its wheel: nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
from PIL import Image
from scipy import ndimage

from tfinpaint import images as images_lib
from tfinpaint.images import Box

# Left and right as seen in the photo (MTCNN's order).
LANDMARKS = ("left eye", "right eye", "nose", "left mouth corner", "right mouth corner")
# Photos are searched for faces at most this many pixels on their longer side (larger ones
# are shrunk for detection only): a 12-megapixel photo costs about what a 1-megapixel one does.
DETECT_SIDE = 1600
# Faces MTCNN finds less surely than this are ignored.
MIN_CONFIDENCE = 0.9
# The smallest face looked for, in pixels of the (possibly shrunk) photo (MTCNN's default).
MIN_FACE = 20
# A training set is taken for faces if at least this share of its sampled images holds one.
FACE_SHARE = 0.9
# Models smaller than this get no template: MTCNN places landmarks on faces seen at 48x48.
MIN_SIZE = 48
# Sampling in and out of a frame works on at most this many pixels at a time.
CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class Face:
    """A face found in a photo.

    Attributes:
        box: (left, top, right, bottom) in the photo's pixels.
        landmarks: float `[5, 2]` (x, y) in the photo's pixels, in the order of `LANDMARKS`.
        confidence: the detector's, in [0, 1].
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    confidence: float

    @property
    def size(self) -> float:
        """The box's longer side in pixels."""
        left, top, right, bottom = self.box
        return max(right - left, bottom - top)


class Detector:
    """MTCNN five-landmark face detection. TensorFlow and the detector load on first use."""

    def __init__(self):
        self._mtcnn = None

    def _net(self):
        if self._mtcnn is None:
            from mtcnn import MTCNN

            self._mtcnn = MTCNN()
        return self._mtcnn

    def __call__(self, image: np.ndarray) -> list[Face]:
        """The faces in a uint8 `[H, W, 3]` photo, largest first."""
        return self.batch([image])[0]

    def batch(self, images: list[np.ndarray]) -> list[list[Face]]:
        """The faces in each of several photos (same-sized photos are detected together)."""
        out: list[list[Face]] = []
        same = len({im.shape for im in images}) == 1 and max(images[0].shape[:2]) <= DETECT_SIDE
        groups = [images] if same else [[im] for im in images]
        for group in groups:
            shrink = max(1.0, max(group[0].shape[:2]) / DETECT_SIDE)
            if shrink > 1:
                h, w = group[0].shape[:2]
                size = (max(1, round(w / shrink)), max(1, round(h / shrink)))
                group = [np.asarray(Image.fromarray(group[0]).resize(size, Image.BOX))]
                shrink = w / size[0]
            rows = self._detect(group)
            for k in range(len(group)):
                faces = [
                    Face(
                        tuple(float(v) * shrink for v in r[1:5]),
                        (np.asarray(r[6:16], np.float64).reshape(2, 5).T + 0.5) * shrink - 0.5,
                        float(r[5]),
                    )
                    for r in rows
                    if int(r[0]) == k and r[5] >= MIN_CONFIDENCE
                ]
                out.append(sorted(faces, key=lambda f: -f.size))
        return out

    def _detect(self, group: list[np.ndarray]) -> np.ndarray:
        if min(group[0].shape[:2]) < 12:  # MTCNN's smallest input
            return np.empty((0, 16))
        rows = self._net().detect_faces(list(group), box_format="xyxy", output_type="numpy", min_face_size=MIN_FACE)
        rows = np.asarray(rows, np.float64)
        return rows.reshape(-1, 16) if rows.size else np.empty((0, 16))


@functools.lru_cache(maxsize=1)
def detector() -> Detector:
    """The process's detector (loading MTCNN takes about half a second)."""
    return Detector()


def similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2x3 similarity transform (rotation, uniform scale, translation) taking points
    `source [n, 2]` closest to `target [n, 2]` in least squares (Umeyama, 1991)."""
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    s, t = source - mu_s, target - mu_t
    u, sigma, vt = np.linalg.svd(t.T @ s / len(source))
    d = np.array([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ np.diag(d) @ vt
    scale = float((sigma * d).sum() / (s**2).sum() * len(source))
    return np.hstack([scale * rotation, (mu_t - scale * rotation @ mu_s)[:, None]])


@dataclasses.dataclass(frozen=True)
class Frame:
    """The model's square view placed in a photo.

    `matrix` (2x3) takes a photo point (x, y), in pixels whose centres are at integers, to
    the frame's (u, v), where the frame is [0, 1] x [0, 1] and its pixel k of n has its
    centre at (k + 0.5) / n.
    """

    matrix: np.ndarray

    @classmethod
    def on_face(cls, face: Face, template: Template) -> Frame:
        return cls(similarity(face.landmarks, template.landmarks))

    @classmethod
    def of_box(cls, box: Box) -> Frame:
        """The frame of an axis-aligned crop."""
        top, left, h, w = box
        return cls(np.array([[1 / w, 0, (0.5 - left) / w], [0, 1 / h, (0.5 - top) / h]]))

    @property
    def side(self) -> float:
        """The frame's side in photo pixels."""
        return 1.0 / math.sqrt(abs(np.linalg.det(self.matrix[:, :2])))

    def to_frame(self, xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, np.float64)
        return xy @ self.matrix[:, :2].T + self.matrix[:, 2]

    def to_photo(self, uv: np.ndarray) -> np.ndarray:
        a = np.linalg.inv(self.matrix[:, :2])
        return (np.asarray(uv, np.float64) - self.matrix[:, 2]) @ a.T

    @staticmethod
    def inside(uv: np.ndarray) -> np.ndarray:
        """Which frame points `[n, 2]` lie in the frame, edges included."""
        return ((uv >= 0) & (uv <= 1)).all(axis=1)

    def _pixels(self, window: Box) -> tuple[tuple[int, int], np.ndarray]:
        """The shape of a photo window and its pixels' (u, v) `[n, 2]`."""
        ys, xs = np.mgrid[window.slices]
        return ys.shape, self.to_frame(np.stack([xs.ravel(), ys.ravel()], axis=-1))

    def window(self, height: int, width: int) -> Box:
        """The photo's pixels the frame touches (may be empty)."""
        corners = self.to_photo(np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.float64))
        left, top = np.floor(corners.min(axis=0)).astype(int)
        right, bottom = np.ceil(corners.max(axis=0)).astype(int) + 1
        top, bottom, left, right = max(top, 0), min(bottom, height), max(left, 0), min(right, width)
        return Box.spanning(top, max(bottom, top), left, max(right, left))

    def _samples(self, arrays: list[np.ndarray], modes: list[str], size: int, orders: list[int] | None = None):
        """Samples (bilinear, or `orders` of interpolation) of each `[H, W, C]` array at
        `factor = ceil(side / size)` points per model pixel each way (the photo's own scale or
        finer), a band of model rows at a time: yields the band's rows and, per array, samples
        `[rows, factor, size, factor, C]`."""
        orders = orders or [1] * len(arrays)
        factor = max(1, math.ceil(self.side / size))
        n = size * factor
        rows_per = max(1, CHUNK // (n * factor)) * factor
        offsets = (np.arange(n) + 0.5) / n
        arrays = [np.asarray(a, np.float64) for a in arrays]
        for r0 in range(0, n, rows_per):
            v = offsets[r0 : r0 + rows_per]
            uv = np.stack(np.broadcast_arrays(offsets[None, :], v[:, None]), axis=-1)
            xy = self.to_photo(uv.reshape(-1, 2))
            coords = [xy[:, 1], xy[:, 0]]
            out = []
            for a, mode, order in zip(arrays, modes, orders):
                chans = [
                    ndimage.map_coordinates(a[..., c], coords, order=order, mode=mode, cval=0.0).reshape(
                        len(v) // factor, factor, size, factor
                    )
                    for c in range(a.shape[-1])
                ]
                out.append(np.stack(chans, axis=-1))
            yield slice(r0 // factor, (r0 + len(v)) // factor), out

    def sample(self, photo: np.ndarray, size: int) -> np.ndarray:
        """The frame's view of a photo `[H, W, C]` at `size` x `size`, float32: the mean of
        each model pixel's bilinear samples."""
        out = np.empty((size, size, np.shape(photo)[-1]), np.float32)
        for rows, (values,) in self._samples([photo], ["nearest"], size):
            out[rows] = values.mean(axis=(1, 3))
        return out

    def sample_known(self, photo: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        """The frame's view of a photo and its mask `[H, W, 1]` (1 = known): `(image, mask)` at
        `size` x `size`. A model pixel is known when at least half of its samples (nearest
        photo pixels, here) are known and inside the photo. Its value is `sample`'s where no
        sample of it or of its neighbours is missing, else the mean of its known samples
        alone: no missing photo pixel goes into a known model pixel."""
        image = self.sample(photo, size)
        known = np.empty((size, size, 1), np.float32)
        clean = np.empty((size, size), bool)
        masked = np.zeros_like(image)
        arrays, modes = [photo, mask], ["nearest", "constant"]
        for rows, (values, m) in self._samples(arrays, modes, size, orders=[0, 0]):
            ok = (m > 0.5).astype(np.float64)
            known[rows] = ok.mean(axis=(1, 3)) >= 0.5
            clean[rows] = ok.all(axis=(1, 3, 4))
            masked[rows] = (values * ok).sum(axis=(1, 3)) / np.maximum(ok.sum(axis=(1, 3)), 1)
        near_missing = ndimage.minimum_filter(clean, size=3, mode="nearest") == 0
        return np.where(near_missing[..., None], masked, image).astype(np.float32), known

    def look(self, photo: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        """The model's input through the frame: the image (float32 `[S, S, 3]` in [-1, 1],
        zero in the hole) and the mask `[S, S, 1]`, as `sample_known` sees them."""
        image, known = self.sample_known(photo, mask, size)
        return np.where(known > 0.5, image / 127.5 - 1.0, 0.0).astype(np.float32), known

    def place(self, generated: np.ndarray, window: Box) -> tuple[np.ndarray, np.ndarray]:
        """G(z) `[S, S, C]` in [-1, 1] at the photo pixels of `window`: float64 values on
        [0, 255], and where the frame covers them (elsewhere the values are meaningless)."""
        shape, uv = self._pixels(window)
        inside = self.inside(uv).reshape(shape)
        n = max(1, math.ceil(self.side))
        grid = np.clip(uv * n - 0.5, 0, n - 1)  # (x, y) in an n x n resize of G(z)
        lo = np.floor(grid.min(axis=0)).astype(int)
        hi = np.minimum(np.ceil(grid.max(axis=0)).astype(int) + 1, n)
        part = images_lib.resize(generated, n, n, Image.BICUBIC, Box.spanning(lo[1], hi[1], lo[0], hi[0]))
        values = np.stack(
            [
                ndimage.map_coordinates(
                    part[..., c].astype(np.float64), [grid[:, 1] - lo[1], grid[:, 0] - lo[0]], order=1, mode="nearest"
                )
                for c in range(part.shape[-1])
            ],
            axis=-1,
        ).reshape(shape + (part.shape[-1],))
        return (values + 1.0) * 127.5, inside

    def mask_from_model(self, model_mask: np.ndarray, height: int, width: int) -> np.ndarray:
        """A mask made in the frame (`[S, S, 1]`) in the photo's pixels `[H, W, 1]`: a photo
        pixel is missing if the frame covers it and the model pixel it falls in is missing."""
        size = model_mask.shape[0]
        out = np.ones((height, width, 1), np.float32)
        window = self.window(height, width)
        if not (window.height and window.width):
            return out
        shape, uv = self._pixels(window)
        inside = ((uv >= 0) & (uv < 1)).all(axis=1)  # a pixel on the far edge falls in no model pixel
        idx = np.clip(np.floor(uv * size).astype(int), 0, size - 1)
        missing = inside & (model_mask[idx[:, 1], idx[:, 0], 0] < 0.5)
        out[window.slices + (0,)] = np.where(missing.reshape(shape), 0.0, 1.0)
        return out


@dataclasses.dataclass(frozen=True)
class Template:
    """Where a face model's training faces have their landmarks.

    Attributes:
        landmarks: float `[5, 2]` (u, v) as fractions of the model's view, in the order
            of `LANDMARKS`: the mean over the training images measured.
        spread: root mean square distance of those images' landmarks from the mean, as a
            fraction of the view's side.
        faces: how many training images it was measured on.
        typical: 95% of those images have their landmarks within this distance (root mean
            square over the five, as a fraction of the view's side) of the template.
    """

    landmarks: np.ndarray
    spread: float
    faces: int
    typical: float

    def to_dict(self) -> dict:
        return {
            "landmarks": {name: [round(float(x), 5) for x in uv] for name, uv in zip(LANDMARKS, self.landmarks)},
            "spread": round(self.spread, 5),
            "typical": round(self.typical, 5),
            "faces": self.faces,
            "detector": "mtcnn",
        }

    @classmethod
    def from_dict(cls, data: dict) -> Template:
        marks = data["landmarks"]
        landmarks = np.array([marks[name] for name in LANDMARKS], np.float64)
        return cls(landmarks, float(data["spread"]), int(data["faces"]), float(data["typical"]))

    def error(self, face: Face, frame: Frame) -> float:
        """Root mean square distance of a face's landmarks, seen through `frame`, from the
        template's, as a fraction of the view's side."""
        return float(np.sqrt(((frame.to_frame(face.landmarks) - self.landmarks) ** 2).sum(axis=1).mean()))


def measure_template(images: np.ndarray) -> Template | None:
    """The landmark template of training images as the model sees them (uint8
    `[N, S, S, 3]`), or None if they are not faces (under `FACE_SHARE` of them hold one)."""
    size = images.shape[1]
    found = [faces[0].landmarks for faces in detector().batch(list(images)) if faces]
    if len(found) < FACE_SHARE * len(images) or not found:
        return None
    marks = (np.stack(found) + 0.5) / size
    mean = marks.mean(axis=0)
    distance = ((marks - mean) ** 2).sum(axis=2)
    typical = float(np.percentile(np.sqrt(distance.mean(axis=1)), 95))
    return Template(mean, float(np.sqrt(distance.mean())), len(found), typical)
