"""A real multi-worker cluster: two `tfinpaint train --strategy multiworker` processes on
loopback ports (MultiWorkerMirroredStrategy, CPU), against one process with the same global
batch."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfinpaint.store import load_model

ROOT = Path(__file__).resolve().parents[1]


def _ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _args(few_faces, run_dir, steps, strategy):
    return [
        sys.executable, "-m", "cli", "train", "--dataset", str(few_faces), "--holdout", "8",
        "--image-size", "32", "--width", "8", "--latent-dim", "16", "--batch-size", "8",
        "--steps", str(steps), "--checkpoint-every", "2", "--seed", "5", "--strategy", strategy,
        "--run-dir", str(run_dir),
    ]  # fmt: skip


def _env(tmp, **extra):
    env = dict(os.environ, TMPDIR=str(tmp), TFINPAINT_LOG_DIR=str(tmp.parent / "logs"), **extra)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def _cluster(few_faces, run_dir, steps, tmp):
    """Start the two workers; returns their processes."""
    ports = _ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    procs = []
    for i in range(2):
        config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        procs.append(
            subprocess.Popen(
                _args(few_faces, run_dir, steps, "multiworker"),
                cwd=ROOT,
                env=_env(tmp, TF_CONFIG=config),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    return procs


def _finish(procs, timeout=400):
    outs = [p.communicate(timeout=timeout)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-3000:]
    return outs


def _same_weights(a, b):
    for x, y in ((a.generator, b.generator), (a.discriminator, b.discriminator)):
        for v, w in zip(x.weights, y.weights, strict=True):
            np.testing.assert_allclose(v.numpy(), w.numpy(), rtol=1e-4, atol=2e-5, err_msg=v.path)


@pytest.fixture(scope="module")
def single(few_faces, tmp_path_factory):
    """The same run in one process: 4 steps of a global batch of 8."""
    tmp = tmp_path_factory.mktemp("single")
    (tmp / "tmp").mkdir()
    done = subprocess.run(
        _args(few_faces, tmp / "run", 4, "default"), cwd=ROOT, env=_env(tmp / "tmp"), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return load_model(tmp / "run")


def test_two_workers_train_like_one_process_and_only_the_chief_writes(few_faces, tmp_path, single):
    (tmp_path / "tmp").mkdir()
    run = tmp_path / "run"
    chief, other = _finish(_cluster(few_faces, run, 4, tmp_path / "tmp"))
    assert "Epoch 1/" in chief and "Epoch 1/" not in other  # the other worker is quiet
    assert f"Trained models saved in {run}" in chief and "Trained models saved" not in other
    _same_weights(load_model(run), single)
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoints",
        "config.json",
        "discriminator.keras",
        "generator.keras",
        "heldout.txt",
        "logs",
        "model.json",
    ]  # fmt: skip (4 steps are under an epoch: no sample grid yet)
    assert sorted(p.name for p in (run / "checkpoints").iterdir() if p.suffix == ".index") == [
        "ckpt-2.index",
        "ckpt-4.index",
    ]
    assert not list((tmp_path / "tmp").iterdir())  # the other worker's checkpoints were removed


def _latest_step(run: Path) -> int:
    """The step of the last checkpoint the run's state file names (0 if none)."""
    latest = tf.train.latest_checkpoint(str(run / "checkpoints")) if (run / "checkpoints").is_dir() else None
    return int(latest.rsplit("-", 1)[1]) if latest else 0


def test_killed_worker_then_both_restarted_resume_from_the_last_checkpoint(few_faces, tmp_path):
    (tmp_path / "tmp").mkdir()
    run = tmp_path / "run"
    procs = _cluster(few_faces, run, 10_000, tmp_path / "tmp")
    deadline = time.time() + 300
    # the manager's state file names a checkpoint only once it is whole (its .index comes first)
    while not _latest_step(run):
        assert time.time() < deadline and all(p.poll() is None for p in procs), "no checkpoint was written"
        time.sleep(0.2)
    procs[1].send_signal(signal.SIGKILL)  # one worker dies; the chief cannot go on alone
    procs[0].send_signal(signal.SIGKILL)
    for p in procs:
        p.communicate()
    last = _latest_step(run)  # the kill may have come after a later one's .index, before its state
    steps = last + 4  # both restarted, asked for 4 steps more than the checkpoints hold
    chief, _ = _finish(_cluster(few_faces, run, steps, tmp_path / "tmp"))
    assert f"Resuming {run} at step {last}" in chief
    (tmp_path / "single").mkdir()
    straight = subprocess.run(
        _args(few_faces, tmp_path / "single" / "run", steps, "default"),
        cwd=ROOT,
        env=_env(tmp_path / "single"),
        capture_output=True,
        text=True,
    )
    assert straight.returncode == 0, straight.stdout[-2000:] + straight.stderr[-2000:]
    _same_weights(load_model(run), load_model(tmp_path / "single" / "run"))
