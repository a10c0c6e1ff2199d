"""`tfinpaint fill --runner`: the fill on Apache Beam's DirectRunner with two worker
processes, checked against the one-process fill byte for byte (the beam extra; skipped
without it)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("apache_beam", reason="the beam extra is not installed (pip install -e '.[beam]')")

from apache_beam.io.filesystem import FileMetadata, FileSystem, MatchResult  # noqa: E402
from apache_beam.io.localfilesystem import LocalFileSystem  # noqa: E402

from tfinpaint import fill as fill_lib  # noqa: E402
from tfinpaint.beam import FAILURES, LISTING  # noqa: E402
from tfinpaint.errors import MaskError, ModelError  # noqa: E402
from tfinpaint.store import shipped_dir  # noqa: E402

FACES = 24
OPTIONS = ["--mask", "random", "--iterations", "2", "--align", "off", "--panel", "--batch-size", "4"]
WORKERS = "--direct_num_workers=2 --direct_running_mode=multi_processing"


@pytest.fixture(scope="module")
def folder(faces_dir, tmp_path_factory):
    """24 real faces in two folders, and a damaged JPEG among them."""
    root = tmp_path_factory.mktemp("beam_photos")
    names = sorted(p.name for p in faces_dir.glob("*.jpg"))[100 : 100 + FACES]
    for k, name in enumerate(names):
        sub = root / ("a" if k % 2 else "b")
        sub.mkdir(exist_ok=True)
        (sub / name).write_bytes((faces_dir / name).read_bytes())
    whole = (faces_dir / names[0]).read_bytes()
    (root / "a" / "damaged.jpg").write_bytes(whole[: len(whole) // 2])  # its header is fine, its pixels cut
    return root


@pytest.fixture(scope="module")
def reference(folder, tmp_path_factory):
    """What `tfinpaint fill` writes in one process."""
    out = tmp_path_factory.mktemp("reference")
    events = list(
        fill_lib.fill_into([folder], out, "celeba64", "random", iterations=2, align="off", panel=True, batch_size=4)
    )
    assert sum(isinstance(e, fill_lib.Failed) for e in events) == 1
    return out


def _command(folder, out):
    return [sys.executable, "-m", "tfinpaint.cli", "fill", str(folder), *OPTIONS, "--out", str(out)]


def _beam(folder, out, **popen):
    """The Beam form, given the photos as the quoted glob 'FOLDER/**/*.jpg' (the reference
    was given the folder: the two name every result alike)."""
    command = [*_command(folder / "**" / "*.jpg", out), "--runner", "DirectRunner", "--pipeline-options", WORKERS]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def _results(out):
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.png"))}


def test_beam_fills_what_fill_fills_byte_for_byte_and_reports_the_damaged(folder, reference, tmp_path):
    out = tmp_path / "beam"
    run = _beam(folder, out)
    output = run.communicate(timeout=600)[0]
    assert run.returncode == 1, output
    lines = output.splitlines()
    assert f"Filled {FACES}, kept 0 (written meanwhile), skipped 0 (filled before), failed 1" in lines
    expected = _results(reference)
    assert len(expected) == 2 * FACES  # results and panels
    assert _results(out) == expected
    (failures,) = out.glob(f"{FAILURES}-*.jsonl")
    (record,) = [json.loads(line) for line in failures.read_text().splitlines()]
    assert record["photo"] == str(folder / "a" / "damaged.jpg")
    assert record["reason"].startswith(f"Cannot read image {folder / 'a' / 'damaged.jpg'}: image file is truncated")
    assert lines[-1] == f"Error: 1 photo could not be filled: see {out}/{FAILURES}-*.jsonl; the others were"

    # a second run writes nothing: every result is there
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    again = _beam(folder, out)
    output = again.communicate(timeout=600)[0]
    assert f"Filled 0, kept 0 (written meanwhile), skipped {FACES} (filled before), failed 1" in output.splitlines()
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == stamps


def test_a_beam_run_killed_midway_completes_when_run_again(folder, reference, tmp_path):
    out = tmp_path / "killed"
    run = _beam(folder, out, start_new_session=True)
    deadline = time.monotonic() + 600
    while len(list(out.rglob("*_filled.png"))) < 4 and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(run.pid, signal.SIGKILL)  # the driver and both workers, mid-write perhaps
    run.wait()
    before = _results(out)
    assert 4 <= len(before) < 2 * FACES, "the run ended before it could be killed midway"
    for name, data in before.items():  # nothing half-written: every file there is whole
        assert data == reference.joinpath(name).read_bytes(), name
    rerun = _beam(folder, out)
    output = rerun.communicate(timeout=600)[0]
    assert rerun.returncode == 1, output
    assert _results(out) == _results(reference)
    visible = [p for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert sorted(p.suffix for p in visible) == [".jsonl"] + [".png"] * (2 * FACES)
    assert (out / LISTING).is_file() and not list(out.rglob(".*.tmp"))  # the killed writers' temporaries are gone
    assert np.asarray(Image.open(next(out.rglob("*_filled.png")))).dtype == np.uint8


class _Remote(FileSystem):
    """A remote file system for the test, as Beam sees GCS or S3: `fakefs://PATH` is the
    local PATH, reached only through Beam's FileSystems (no folders of its own)."""

    PREFIX = "fakefs://"

    def __init__(self, pipeline_options=None):
        super().__init__(pipeline_options)
        self.local = LocalFileSystem(pipeline_options)

    @classmethod
    def scheme(cls):
        return "fakefs"

    def _p(self, path):
        return path[len(self.PREFIX) :] if path.startswith(self.PREFIX) else path

    def _meta(self, m):
        return FileMetadata(self.PREFIX + m.path, m.size_in_bytes, m.last_updated_in_seconds)

    def join(self, base, *paths):
        return self.PREFIX + self.local.join(self._p(base), *paths)

    def split(self, path):
        head, tail = self.local.split(self._p(path))
        return self.PREFIX + head, tail

    def mkdirs(self, path):
        pass

    def has_dirs(self):
        return False

    def _list(self, prefix):
        return (self._meta(m) for m in self.local._list(self._p(prefix)))

    def match(self, patterns, limits=None):
        found = self.local.match([self._p(p) for p in patterns], limits)
        return [MatchResult(p, [self._meta(m) for m in r.metadata_list]) for p, r in zip(patterns, found)]

    def create(self, path, *args, **kwargs):
        os.makedirs(os.path.dirname(self._p(path)), exist_ok=True)  # as a bucket takes any name
        return self.local.create(self._p(path), *args, **kwargs)

    def open(self, path, *args, **kwargs):
        return self.local.open(self._p(path), *args, **kwargs)

    def copy(self, sources, destinations):
        self.local.copy([self._p(p) for p in sources], [self._p(p) for p in destinations])

    def rename(self, sources, destinations):
        for d in destinations:
            os.makedirs(os.path.dirname(self._p(d)), exist_ok=True)
        self.local.rename([self._p(p) for p in sources], [self._p(p) for p in destinations])

    def exists(self, path):
        return self.local.exists(self._p(path))

    def size(self, path):
        return self.local.size(self._p(path))

    def last_updated(self, path):
        return self.local.last_updated(self._p(path))

    def checksum(self, path):
        return self.local.checksum(self._p(path))

    def metadata(self, path):
        return self._meta(self.local.metadata(self._p(path)))

    def delete(self, paths):
        self.local.delete([self._p(p) for p in paths])


def test_photos_and_results_on_a_remote_file_system(folder, reference, tmp_path):
    """The gs:// and s3:// path: photos listed and read, the model's folder copied, results
    written and renamed into place, failures recorded, all through Beam's FileSystems, as on
    a bucket (here one in this process, so the DirectRunner runs in it too)."""
    from tfinpaint import beam as beam_lib

    out = tmp_path / "bucket"
    counts = beam_lib.run(
        [_Remote.PREFIX + str(folder)],
        _Remote.PREFIX + str(out),
        _Remote.PREFIX + str(shipped_dir() / "celeba64"),  # the model's folder on the bucket too
        "random",
        iterations=2,
        align="off",
        panel=True,
        batch_size=4,
    )
    assert counts == beam_lib.Counts(filled=FACES, kept=0, skipped=0, failed=1)
    assert _results(out) == _results(reference)
    (failures,) = out.glob(f"{FAILURES}-*.jsonl")
    assert json.loads(failures.read_text())["photo"] == _Remote.PREFIX + str(folder / "a" / "damaged.jpg")
    assert not list(out.rglob(".*.tmp"))


def test_a_remote_model_or_mask_is_copied_once_and_a_missing_one_refused(tmp_path):
    from tfinpaint import beam as beam_lib

    shipped = shipped_dir() / "svhn64"
    local = beam_lib.local_model(_Remote.PREFIX + str(shipped))
    assert beam_lib.local_model(_Remote.PREFIX + str(shipped)) == local  # once per process
    assert _tree(local) == _tree(shipped)
    assert beam_lib.local_model("celeba64") == "celeba64" and beam_lib.local_mask("block") == "block"
    masks = tmp_path / "masks"
    (masks / "sub").mkdir(parents=True)
    Image.fromarray(np.eye(8, dtype=np.uint8) * 255).save(masks / "sub" / "a.png")
    Image.fromarray(np.ones((8, 8), np.uint8) * 255).save(masks / "b.png")
    folder = beam_lib.local_mask(_Remote.PREFIX + str(masks))
    assert _tree(folder) == _tree(masks)
    one = beam_lib.local_mask(_Remote.PREFIX + str(masks / "b.png"))
    assert one.name == "b.png" and one.read_bytes() == (masks / "b.png").read_bytes()
    with pytest.raises(ModelError, match=r"^No model at fakefs://.*nowhere: nothing is there$"):
        beam_lib.local_model(_Remote.PREFIX + str(tmp_path / "nowhere"))
    with pytest.raises(MaskError, match=r"^No mask at fakefs://.*nowhere.png: nothing is there$"):
        beam_lib.local_mask(_Remote.PREFIX + str(tmp_path / "nowhere.png"))
    # and the driver says so before the pipeline starts, in one line
    with pytest.raises(ModelError, match=r"^No model at fakefs://.*nowhere: nothing is there$"):
        beam_lib.run([str(masks)], str(tmp_path / "out"), _Remote.PREFIX + str(tmp_path / "nowhere"))
    assert not (tmp_path / "out").exists()


def _tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}
