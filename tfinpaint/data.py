"""From a dataset spec (a TFDS name, a folder or a glob) to a `tf.data.Dataset` of images.

Images come out as float32 `[size, size, channels]` in [-1, 1]. Decoded, preprocessed
images are cached as uint8 so every epoch after the first only shuffles, flips and
batches; a file that fails to decode is skipped and counted in one warning.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfinpaint.constants import PREPROCESS
from tfinpaint.errors import ArgumentError, DataError, first_line
from tfinpaint.files import is_glob
from tfinpaint.images import CELEBA_CROP, IMAGE_EXTENSIONS, crop_box  # noqa: F401 (data.crop_box, as before)
from tfinpaint.photos import list_images

TFDS_ALIASES = {"celeba_a": "celeb_a", "celeba": "celeb_a"}
# Dataset -> (preprocess preset, default holdout).
KNOWN = {"celeb_a": ("celeba", 2000), "svhn_cropped": ("svhn", 0)}
SHUFFLE_CAP = 20_000


@dataclasses.dataclass(frozen=True)
class Source:
    """What a dataset spec resolved to.

    Attributes:
        kind: "files" or "tfds".
        name: the TFDS name or the folder/glob as given.
        files: training files (kind "files"), sorted.
        heldout: held-out files (kind "files") or the TFDS split held out.
        preprocess: the preset used.
        split: the TFDS split trained on (kind "tfds").
    """

    kind: str
    name: str
    preprocess: str
    files: tuple[str, ...] = ()
    heldout: tuple[str, ...] = ()
    split: str = ""


def _first(spec: str | Sequence[str]) -> str:
    return spec if isinstance(spec, str) else (list(spec) or [""])[0]


def default_preprocess(spec: str | Sequence[str]) -> str:
    """The preset a dataset spec gets when none is asked for (by the first of several)."""
    spec = _first(spec)
    name = TFDS_ALIASES.get(spec, spec)
    if name in KNOWN:
        return KNOWN[name][0]
    low = spec.lower()
    if "celeb" in low:
        return "celeba"
    if "svhn" in low:
        return "svhn"
    return "square"


def default_holdout(spec: str | Sequence[str]) -> int:
    """Images kept out of training when --holdout is not given (2000 for CelebA)."""
    spec = _first(spec)
    name = TFDS_ALIASES.get(spec, spec)
    if name in KNOWN:
        return KNOWN[name][1]
    return 2000 if default_preprocess(spec) == "celeba" else 0


def looks_like_path(spec: str) -> bool:
    return os.sep in spec or spec.startswith(".") or is_glob(spec) or os.path.exists(spec)


def resolve(spec: str | Sequence[str], preprocess: str | None = None, holdout: int | None = None) -> Source:
    """Turn a dataset spec into a `Source`, holding the first `holdout` images out.

    `spec` may also be several folders or globs: their images are trained on together,
    and the held-out images are the first `holdout` of the first one.
    """
    if not isinstance(spec, str):
        specs = list(spec)
        if len(specs) == 1:
            return resolve(specs[0], preprocess, holdout)
        if not specs:
            raise DataError("No dataset given")
        first = resolve(specs[0], preprocess, holdout)
        if first.kind != "files":
            raise DataError(f"Several datasets must all be folders or globs; {specs[0]!r} is a TFDS name")
        files = list(first.files)
        for other in specs[1:]:
            if not looks_like_path(other):
                raise DataError(f"Several datasets must all be folders or globs; {other!r} is not")
            more = resolve(other, first.preprocess, 0)
            files += more.files
        return Source("files", ",".join(specs), first.preprocess, tuple(files), first.heldout)
    preprocess = preprocess or default_preprocess(spec)
    if preprocess not in PREPROCESS:
        raise DataError(f"Unknown preprocessing {preprocess!r}; expected one of {PREPROCESS}")
    holdout = default_holdout(spec) if holdout is None else holdout
    if holdout < 0:
        raise DataError(f"Expected a holdout of 0 or more images, got {holdout}")
    if looks_like_path(spec):
        files = list_images(spec)
        if not files:
            raise DataError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) found in {spec}")
        if holdout >= len(files):
            raise DataError(f"Holdout of {holdout} leaves no training images of the {len(files)} in {spec}")
        return Source("files", spec, preprocess, tuple(files[holdout:]), tuple(files[:holdout]))
    name = TFDS_ALIASES.get(spec, spec)
    import tensorflow_datasets as tfds

    try:
        tfds.builder_cls(name)
    except Exception:  # DatasetNotFoundError and friends
        raise DataError(f"{spec!r} is neither an existing folder nor a TFDS dataset name") from None
    split = f"train[{holdout}:]" if holdout else "train"
    return Source("tfds", name, preprocess, heldout=(f"train[:{holdout}]",) if holdout else (), split=split)


def preprocess_image(image: tf.Tensor, preset: str, size: int, channels: int = 3) -> tf.Tensor:
    """Crop and resize one uint8 image `[H, W, C]` to float32 `[size, size, channels]` in [0, 255]."""
    if image.shape.rank != 3:
        raise ArgumentError(f"Expected an image of rank 3, got shape {image.shape}")
    if channels == 1 and image.shape[-1] != 1:
        image = tf.image.rgb_to_grayscale(image[..., :3])
    elif channels == 3 and image.shape[-1] == 1:
        image = tf.image.grayscale_to_rgb(image)
    image = image[..., :channels]
    if preset != "svhn":
        h, w = tf.shape(image)[0], tf.shape(image)[1]
        side = tf.minimum(h, w)
        if preset == "celeba":
            side = tf.minimum(side, tf.cast(tf.round(tf.cast(w, tf.float32) * CELEBA_CROP), tf.int32))
        top, left = (h - side) // 2, (w - side) // 2
        image = image[top : top + side, left : left + side]
    image = tf.image.resize(image, (size, size), method="area", antialias=True)
    return tf.clip_by_value(tf.round(image), 0.0, 255.0)


def preprocess_numpy(image: np.ndarray, preset: str, size: int) -> np.ndarray:
    """`preprocess_image` for one uint8 numpy image; returns float32 in [-1, 1]."""
    out = preprocess_image(tf.constant(image, tf.uint8), preset, size, image.shape[-1] if image.ndim == 3 else 1)
    return out.numpy() / 127.5 - 1.0


def preprocess_files(files: Sequence[str | os.PathLike], preset: str, size: int, channels: int = 3) -> np.ndarray:
    """Many image files preprocessed at once, float32 `[N, size, size, channels]` in [-1, 1],
    decoded and resized in parallel by tf.data as training reads them (`base_dataset`, before
    its uint8 cast): thousands a second, where `preprocess_numpy` one at a time does hundreds.
    TensorFlow's JPEG decoder may differ from Pillow's by a few grey levels.

    Raises:
        DataError: a file that cannot be decoded.
    """
    ds = tf.data.Dataset.from_tensor_slices([str(f) for f in files])
    ds = ds.map(
        lambda p: preprocess_image(_decode(p, channels), preset, size, channels),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    try:
        batches = [b.numpy() for b in ds.batch(1024)]
    except tf.errors.OpError as e:
        raise DataError(f"Cannot read the images: {first_line(e.message)}") from None
    if not batches:
        return np.zeros((0, size, size, channels), np.float32)
    return (np.concatenate(batches) / 127.5 - 1.0).astype(np.float32)


def _decode(path: tf.Tensor, channels: int) -> tf.Tensor:
    data = tf.io.read_file(path)
    return tf.io.decode_image(data, channels=channels, expand_animations=False, dtype=tf.uint8)


def base_dataset(
    source: Source, image_size: int, channels: int = 3, data_dir: str | None = None
) -> tuple[tf.data.Dataset, int]:
    """Decoded, preprocessed uint8 images, cached, in a fixed order; and their count.

    Undecodable files are dropped; when any are, one warning says how many.
    """
    autotune = tf.data.AUTOTUNE

    def prep(image):
        image.set_shape([None, None, channels])
        return tf.cast(preprocess_image(image, source.preprocess, image_size, channels), tf.uint8)

    if source.kind == "files":
        ds = tf.data.Dataset.from_tensor_slices(list(source.files))
        ds = ds.map(lambda p: prep(_decode(p, channels)), num_parallel_calls=autotune, deterministic=True)
        ds = ds.ignore_errors().cache()
        count = 0
        for _ in ds.batch(1024):  # one pass fills the cache and counts what decoded
            count += int(_.shape[0])
        bad = len(source.files) - count
        if bad:
            warnings.warn(
                f"Skipped {bad} of {len(source.files)} files in {source.name} that could not be decoded", stacklevel=2
            )
        if count == 0:
            raise DataError(f"None of the {len(source.files)} files in {source.name} could be decoded")
        return ds, count
    builder = _prepared_builder(source.name, data_dir)
    ds, info = builder.as_dataset(split=source.split, shuffle_files=False), builder.info
    if "image" not in info.features:
        raise DataError(f"TFDS dataset {source.name!r} has no 'image' feature")
    ds = ds.map(lambda ex: prep(ex["image"]), num_parallel_calls=autotune, deterministic=True).cache()
    count = int(ds.cardinality())
    if count < 0:  # unknown (e.g. mocked data): count once; the cache makes it free later
        count = int(ds.reduce(0, lambda n, _: n + 1))
    return ds, count


def _prepared_builder(name: str, data_dir: str | None):
    """The TFDS builder of `name`, downloaded and prepared first if it is not yet.

    Raises:
        DataError: it is not prepared and cannot be downloaded or prepared here.
    """
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=data_dir)
    if not builder.is_prepared():
        hosts = _download_hosts(builder)
        if not any(_reachable(host, port) for host, port in hosts):  # say so now, not after TFDS's retries
            raise DataError(
                f"TFDS dataset {name} is not prepared in {builder.data_dir} and cannot be downloaded: "
                f"{', '.join(h for h, _ in hosts)} cannot be reached from here. Prepare it where there is "
                f"internet (`tfds build {name} --data_dir DIR`), copy DIR here and pass `data_dir=DIR`, "
                "or train on a folder of images"
            )
        try:
            builder.download_and_prepare()
        except Exception as e:  # no network, a quota, a checksum, a manual download: all end here
            raise DataError(
                f"TFDS dataset {name} is not in {builder.data_dir} and could not be downloaded and prepared "
                f"({type(e).__name__}: {first_line(e)}). Prepare it where there is internet "
                f"(`tfds build {name} --data_dir DIR`), copy DIR here and pass `data_dir=DIR`, "
                "or train on a folder of images"
            ) from None
    return builder


TFDS_MIRROR = ("storage.googleapis.com", 443)  # where TFDS looks for datasets prepared already


def _download_hosts(builder) -> list[tuple[str, int]]:
    """(host, port) of every place a TFDS builder downloads from: its URLs and TFDS's mirror,
    or the proxy that the environment (HTTP_PROXY, HTTPS_PROXY) sends them to."""
    import urllib.parse
    import urllib.request

    try:
        urls = list(builder.url_infos or ())
    except Exception:  # a builder without a checksums file
        urls = []
    proxies = urllib.request.getproxies()
    hosts = set()
    for url in [f"https://{TFDS_MIRROR[0]}/", *urls]:
        parts = urllib.parse.urlparse(url)
        if not parts.hostname:
            continue
        proxy = None if urllib.request.proxy_bypass(parts.hostname) else proxies.get(parts.scheme)
        target = urllib.parse.urlparse(proxy) if proxy else parts
        hosts.add((target.hostname, target.port or (80 if target.scheme == "http" else 443)))
    return sorted(hosts)


def _reachable(host: str, port: int, timeout: float = 3.0) -> bool:
    import socket

    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:  # no route, no name, refused, timed out
        return False


def epoch_dataset(
    base: tf.data.Dataset, count: int, batch_size: int, epoch: int, seed: int, flip: bool = True
) -> tf.data.Dataset:
    """One epoch of float32 batches in [-1, 1], in an order fixed by (seed, epoch).

    Batches are full (the remainder is dropped), so `.skip(k)` resumes an epoch at step k.
    """
    ds = base.shuffle(min(count, SHUFFLE_CAP), seed=seed * 100_003 + epoch, reshuffle_each_iteration=False)
    ds = ds.enumerate()

    def to_float(i, image):
        image = tf.cast(image, tf.float32) / 127.5 - 1.0
        if flip:
            image = tf.image.stateless_random_flip_left_right(
                image, seed=tf.stack([tf.cast(seed * 7919 + epoch, tf.int64), i])
            )
        return image

    ds = ds.map(to_float, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def write_list(path: Path, names: list[str] | tuple[str, ...]) -> None:
    path.write_text("".join(f"{n}\n" for n in names))
