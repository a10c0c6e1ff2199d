"""Test helpers: unaligned faces with a known answer (a real aligned face pasted into a real
photo at another scale, angle and place; also used by benchmarks/unaligned_faces.py), and a
seam measure."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from tfinpaint import data as data_lib
from tfinpaint import faces


def paste_face(
    face: np.ndarray, background: np.ndarray, scale: float, angle: float, centre: tuple[float, float]
) -> tuple[np.ndarray, faces.Frame]:
    """`face` (uint8, CelebA's aligned layout) turned by `angle` degrees (counter-clockwise
    as seen), scaled by `scale` and centred at `centre` (x, y) in a copy of `background`
    (cubic spline sampling). Returns the photo and the 2x3 map from its pixels to the face
    image's (`carry` takes frames of the face image into the photo with it)."""
    h, w = face.shape[:2]
    t = np.radians(angle)
    turn = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
    inverse = turn.T / scale
    middle = np.array([(w - 1) / 2, (h - 1) / 2])
    to_face = np.hstack([inverse, (middle - inverse @ np.asarray(centre, float))[:, None]])
    height, width = background.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width]
    q = np.stack([xs.ravel(), ys.ravel()], axis=-1) @ to_face[:, :2].T + to_face[:, 2]
    inside = (q >= -0.5).all(axis=1) & (q[:, 0] <= w - 0.5) & (q[:, 1] <= h - 0.5)
    out = background.reshape(-1, 3).astype(np.float64)
    for c in range(3):
        values = ndimage.map_coordinates(face[..., c].astype(np.float64), [q[:, 1], q[:, 0]], order=3, mode="nearest")
        out[inside, c] = values[inside]
    return np.clip(np.round(out), 0, 255).astype(np.uint8).reshape(height, width, 3), to_face


def carry(frame: faces.Frame, to_face: np.ndarray) -> faces.Frame:
    """A frame on the face image, where it lies in the photo the face was pasted into."""
    a, b = frame.matrix[:, :2], frame.matrix[:, 2]
    return faces.Frame(np.hstack([a @ to_face[:, :2], (a @ to_face[:, 2] + b)[:, None]]))


def crop_frame(face: np.ndarray) -> faces.Frame:
    """The model's centre crop of an image in CelebA's aligned layout, as a frame."""
    return faces.Frame.of_box(data_lib.crop_box(*face.shape[:2], "celeba"))


def frame_error(found: faces.Frame, truth: faces.Frame, template: faces.Template) -> float:
    """Root mean square distance between where two frames put the template's landmarks,
    as a fraction of the frame's side."""
    points = truth.to_photo(template.landmarks)
    return float(np.sqrt(((found.to_frame(points) - truth.to_frame(points)) ** 2).sum(axis=1).mean()))


def boundary_step(image: np.ndarray, hole: np.ndarray) -> float:
    """Mean absolute step (grey levels, channels averaged) across every 4-neighbour pair with one
    pixel in the hole and one known: a seam makes it far larger than the photo's own there."""
    steps = []
    down = (np.s_[:-1], np.s_[1:])
    right = (np.s_[:, :-1], np.s_[:, 1:])
    for a, b in (down, right):
        cross = hole[a] != hole[b]
        steps.append(np.abs(image[a].astype(float) - image[b])[cross].mean(-1))
    return float(np.concatenate(steps).mean())
