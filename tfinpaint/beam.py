"""`tfinpaint fill` on Apache Beam: the same fills, by as many workers as a runner gives.

    listing = list_photos(["gs://bucket/photos/**/*.jpg"], "gs://bucket/filled")  # on the driver, once
    with beam.Pipeline(options=...) as p:
        p | FillPhotos(listing, "gs://bucket/filled", model="celeba64", mask="block")

The driver lists the photos once, as `tfinpaint fill` expands its arguments (the same order,
so each photo keeps the index that seeds its generated mask), into a listing file beside the
results that the workers read in parallel. Each worker skips the photos whose results exist,
loads the model once (`RunInference` with `FillHandler`) and fills its batches with
`fill.fill`, the one code path of every fill: a result is byte for byte the one `tfinpaint
fill` writes. Photos, results, the model's folder and mask files go through Beam's file
systems (local folders, `gs://`, `s3://` alike; each worker copies a remote model or mask
once); each result is written under a temporary name and renamed into place, so no partial
file is ever seen, and a re-run after a failure fills only what is missing. A photo
that cannot be filled (damaged, no face under `align="on"`, a mask that does not fit) is one
JSON line in `OUT/tfinpaint-failures-*.jsonl` (its path and the reason) and never stops the
pipeline. Counts (filled, kept, skipped, failed) are Beam metrics in the namespace `tfinpaint`.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

try:
    import apache_beam as beam
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.metrics import Metrics
    from apache_beam.ml.inference.base import ModelHandler, RunInference
except ImportError:  # pragma: no cover - the extra is optional
    from tfinpaint.errors import MissingDependency

    raise MissingDependency("Filling on Apache Beam needs the beam extra: pip install 'tfinpaint[beam]'") from None

from tfinpaint import files, store
from tfinpaint import fill as fill_lib
from tfinpaint import photos as photos_lib
from tfinpaint.errors import DataError, MaskError, ModelError, TfinpaintError, first_line
from tfinpaint.images import IMAGE_EXTENSIONS, png_bytes

NAMESPACE = "tfinpaint"
LISTING = ".tfinpaint-photos.jsonl"
FAILURES = "tfinpaint-failures"


class Photo(NamedTuple):
    """One photo of the job: its place in the whole listing (which seeds its mask), where it
    is, and the name its results are written under."""

    index: int
    path: str
    name: str


def _is_remote(path: str) -> bool:
    return "://" in str(path)


def _join(folder: str, name: str) -> str:
    return posixpath.join(folder, name) if _is_remote(folder) else os.path.join(folder, name)


def list_photos(specs: Sequence[str], out: str) -> str:
    """List the photos of `specs` (files, folders, globs; local or on a Beam file system) as
    `tfinpaint fill` expands them, in order, into the listing file `OUT/.tfinpaint-photos.jsonl`;
    returns its path.

    Raises:
        DataError: a spec names no image.
    """
    found: list[tuple[str, str]] = []
    for spec in map(str, specs):
        if not _is_remote(spec):
            found += [(str(photos_lib.photo_path(p)), photos_lib.photo_name(p, 0)) for p in photos_lib.expand([spec])]
            continue
        pattern = spec if any(c in spec for c in "*?[") else spec.rstrip("/") + "/**"
        root = pattern[: min(pattern.index(c) for c in "*?[" if c in pattern)].rsplit("/", 1)[0]
        (match,) = FileSystems.match([pattern])
        paths = sorted(m.path for m in match.metadata_list if m.path.lower().endswith(IMAGE_EXTENSIONS))
        if not paths:
            raise DataError(f"No images match {spec}")
        found += [(p, p[len(root) + 1 :] if p != spec else posixpath.basename(p)) for p in paths]
    listing = _join(out, LISTING)
    if not _is_remote(out):  # and the temporaries of writers killed mid-write, in every folder
        Path(out).mkdir(parents=True, exist_ok=True)
        for folder, _, _ in os.walk(out):
            files.remove_stale_temporaries(folder)
    with FileSystems.create(listing) as f:
        for i, (path, name) in enumerate(found):
            f.write((json.dumps({"index": i, "path": path, "name": name}) + "\n").encode())
    return listing


def _outputs(out: str, name: str, panel: bool) -> list[str]:
    filled, pan = photos_lib.output_paths(name, "")
    return [_join(out, str(p)) for p in ([filled, pan] if panel else [filled])]


class SkipDone(beam.DoFn):
    """Pass on only the photos whose results do not all exist (unless `overwrite`)."""

    def __init__(self, out: str, panel: bool, overwrite: bool):
        self.out, self.panel, self.overwrite = out, panel, overwrite
        self.skipped = Metrics.counter(NAMESPACE, "skipped")

    def process(self, photo: Photo):
        if not self.overwrite and all(FileSystems.exists(p) for p in _outputs(self.out, photo.name, self.panel)):
            self.skipped.inc()
            return
        yield photo


@dataclasses.dataclass
class FillHandler(ModelHandler):
    """A RunInference model handler: loads a tfinpaint model once per worker and fills a
    batch of photos with `fill.fill`; yields `(photo, FilledPhoto or Failed)`."""

    model: str | None
    mask: str = "block"
    batch_size: int = 16
    options: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        super().__init__()

    def load_model(self) -> store.Model:
        return store.load_model(local_model(self.model))

    def batch_elements_kwargs(self):
        return {"min_batch_size": 1, "max_batch_size": self.batch_size}

    def get_metrics_namespace(self) -> str:
        return NAMESPACE

    def run_inference(self, batch: Sequence[Photo], model: store.Model, inference_args=None) -> Iterable:
        max_pixels = self.options.get("max_pixels", photos_lib.MAX_PIXELS)
        mask = local_mask(self.mask)
        with tempfile.TemporaryDirectory(prefix="tfinpaint-beam-") as tmp:
            ready, failed = [], {}
            for k, photo in enumerate(batch):
                try:
                    local = _local_copy(photo.path, Path(tmp) / str(k))
                    listed = photos_lib.Listed(local, photo.name)
                    photos_lib.check([listed], mask, max_pixels, model.preprocess, model.image_size)
                    ready.append((photo, listed))
                except (TfinpaintError, OSError) as e:  # a photo's own fault: reported, never fatal
                    failed[photo] = fill_lib.Failed(photo.name, photo.path, first_line(e))
            results = (
                fill_lib.fill(
                    [listed for _, listed in ready],
                    model,
                    mask,
                    batch_size=self.batch_size,
                    errors="report",
                    indices=[photo.index for photo, _ in ready],
                    checked=True,  # each photo just now, alone
                    **self.options,
                )
                if ready
                else []
            )
            done = dict(zip((photo for photo, _ in ready), results))
            return [(photo, failed[photo] if photo in failed else done[photo]) for photo in batch]


def _local_copy(path: str, folder: Path) -> Path:
    """The photo itself if it is local, else a copy in `folder` (its file name kept)."""
    if not _is_remote(path):
        if not Path(path).is_file():
            raise DataError(f"Cannot read image {path}: no such file")
        return Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    local = folder / posixpath.basename(path)
    with FileSystems.open(path) as src:
        local.write_bytes(src.read())
    return local


_COPIES: dict[str, Path] = {}


def _remote_files(spec: str, what: str) -> tuple[dict[str, str], bool]:
    """The files of the remote folder (its whole tree) or file `spec`, as {path: name inside
    the folder}, and whether it is a folder.

    Raises:
        ModelError, MaskError (by `what`): nothing is there.
    """
    root = spec.rstrip("/")
    (tree,) = FileSystems.match([root + "/**"])
    if tree.metadata_list:
        return {m.path: m.path[len(root) + 1 :] for m in tree.metadata_list}, True
    (one,) = FileSystems.match([root])
    if not one.metadata_list:
        raise (ModelError if what == "model" else MaskError)(f"No {what} at {spec}: nothing is there")
    return {root: posixpath.basename(root)}, False


def _copied(spec: str, what: str) -> Path:
    """A local copy of the remote folder or file `spec`, made once per worker process and
    removed when it exits."""
    if spec not in _COPIES:
        names, is_folder = _remote_files(spec, what)
        folder = Path(tempfile.mkdtemp(prefix="tfinpaint-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        for path, name in names.items():
            target = folder.joinpath(*name.split("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            with FileSystems.open(path) as src:
                target.write_bytes(src.read())
        _COPIES[spec] = folder if is_folder else folder / next(iter(names.values()))
    return _COPIES[spec]


def local_model(spec: str | None) -> str | Path | None:
    """`spec` itself for a shipped model's name or a local folder; for a model folder on a
    Beam file system (`gs://`, `s3://`), a local copy of the whole folder, made once per
    worker process (`store` loads local folders)."""
    return _copied(spec, "model") if spec is not None and _is_remote(spec) else spec


def local_mask(spec: str) -> str | Path:
    """`spec` itself for a mask kind or a local path; for a mask file or a folder of masks on
    a Beam file system, a local copy, made once per worker process."""
    return _copied(spec, "mask") if _is_remote(spec) else spec


def write(path: str, data: bytes, overwrite: bool) -> bool:
    """Write `data` to `path` through Beam's file systems under a temporary name, then rename
    it into place; without `overwrite`, an existing file is kept. Returns whether it was written."""
    if not _is_remote(path):  # locally, the package's own atomic writer (a link refuses an existing name)
        return files.write_atomically(path, lambda tmp: tmp.write_bytes(data), replace=overwrite)
    if not overwrite and FileSystems.exists(path):
        return False
    head, tail = posixpath.split(path)
    tmp = posixpath.join(head, f".{tail}.{os.getpid()}.tmp")
    with FileSystems.create(tmp) as f:
        f.write(data)
    if overwrite and FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])
    return True


class WriteResults(beam.DoFn):
    """Write each filled photo's files; send each failure to the `failed` output."""

    def __init__(self, out: str, panel: bool, overwrite: bool):
        self.out, self.panel, self.overwrite = out, panel, overwrite
        self.filled = Metrics.counter(NAMESPACE, "filled")
        self.kept = Metrics.counter(NAMESPACE, "kept")
        self.failed = Metrics.counter(NAMESPACE, "failed")

    def process(self, element):
        photo, result = element
        if isinstance(result, fill_lib.Failed):
            self.failed.inc()
            yield beam.pvalue.TaggedOutput("failed", json.dumps({"photo": photo.path, "reason": result.message}))
            return
        pictures = [result.image] + ([result.panel()] if self.panel else [])
        icc = result.photo.icc_profile
        written = [
            write(path, png_bytes(picture, icc), self.overwrite)
            for path, picture in zip(_outputs(self.out, photo.name, self.panel), pictures)
        ]
        (self.filled if written[0] else self.kept).inc()


class FillPhotos(beam.PTransform):
    """Fill the photos of a listing (`list_photos`) into `out`; the failures, one JSON line
    each, go to `OUT/tfinpaint-failures-*.jsonl`. `options` are `fill.fill`'s."""

    def __init__(
        self,
        listing: str,
        out: str,
        model: str | None = None,
        mask: str = "block",
        *,
        panel: bool = False,
        overwrite: bool = False,
        batch_size: int = 16,
        **options,
    ):
        super().__init__()
        if not isinstance(mask, str) and not isinstance(mask, os.PathLike):
            raise MaskError("On Beam, a mask is a kind, a mask file or a folder of masks every worker can read")
        self.listing, self.out, self.panel, self.overwrite = listing, str(out), panel, overwrite
        self.handler = FillHandler(model, str(mask), batch_size, options)

    def expand(self, pbegin):
        results = (
            pbegin
            | "List" >> beam.io.ReadFromText(self.listing)
            | "Parse" >> beam.Map(lambda line: Photo(**json.loads(line)))
            | "Reshuffle" >> beam.Reshuffle()  # spread the photos over the workers
            | "SkipDone" >> beam.ParDo(SkipDone(self.out, self.panel, self.overwrite))
            | "Fill" >> RunInference(self.handler)
            | "Write" >> beam.ParDo(WriteResults(self.out, self.panel, self.overwrite)).with_outputs("failed")
        )
        return results.failed | "Failures" >> beam.io.WriteToText(
            _join(self.out, FAILURES), file_name_suffix=".jsonl", num_shards=1
        )


class Counts(NamedTuple):
    filled: int
    kept: int
    skipped: int
    failed: int


def counts(result) -> Counts:
    """The counts of a finished pipeline's fill, from its metrics."""
    from apache_beam.metrics.metric import MetricsFilter

    found = {name: 0 for name in Counts._fields}
    for counter in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        if counter.key.metric.name in found:
            found[counter.key.metric.name] += counter.committed or counter.attempted or 0
    return Counts(**found)


def run(
    specs: Sequence[str],
    out: str,
    model: str | None = None,
    mask: str = "block",
    *,
    pipeline_args: Sequence[str] = (),
    **options,
) -> Counts:
    """List the photos, fill them on the runner `pipeline_args` choose (Beam's own options:
    `--runner DataflowRunner --project ...`; default the DirectRunner), wait, and count."""
    from apache_beam.options.pipeline_options import PipelineOptions

    for spec, what in ((model, "model"), (mask, "mask")):  # on the driver, before any worker starts
        if spec is not None and _is_remote(str(spec)):
            _remote_files(str(spec), what)
    listing = list_photos(specs, str(out))
    pipeline = beam.Pipeline(options=PipelineOptions(list(pipeline_args)))
    _ = pipeline | FillPhotos(listing, str(out), model, mask, **options)
    result = pipeline.run()
    result.wait_until_finish()
    return counts(result)
