import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as `import tfinpaint` sets it; TensorFlow loads first here

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Two logical CPUs, set before TensorFlow starts, so MirroredStrategy can be tested here.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(_cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
FACES = SHARED / "celeba_align_half"
DIGITS = SHARED / "svhn32"


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    if not FACES.is_dir():
        pytest.fail(f"Real faces are expected in {FACES} (the project's shared data)")
    return FACES


@pytest.fixture(scope="session")
def digits_dir() -> Path:
    if not DIGITS.is_dir():
        pytest.fail(f"Real digits are expected in {DIGITS} (the project's shared data)")
    return DIGITS


@pytest.fixture(scope="session")
def few_faces(tmp_path_factory, faces_dir) -> Path:
    """A folder of links to 80 real faces, for quick training runs."""
    folder = tmp_path_factory.mktemp("faces")
    for src in sorted(faces_dir.glob("*.jpg"))[:80]:
        (folder / src.name).symlink_to(src)
    return folder


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, few_faces) -> Path:
    """A 32x32, width-8 model trained for a few steps on real faces (its card holds out 8)."""
    from tfinpaint.train import TrainConfig, train

    run_dir = tmp_path_factory.mktemp("run") / "tiny"
    train(
        TrainConfig(
            dataset=str(few_faces),
            run_dir=str(run_dir),
            image_size=32,
            width=8,
            latent_dim=16,
            batch_size=8,
            steps=20,
            holdout=8,
            seed=1,
            preprocess="celeba",
        ),
        verbose=0,
    )
    return run_dir


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory, tiny_run) -> Path:
    """The tiny run exported as a TF Serving model base path, searching 20 steps by default."""
    from tfinpaint.export import export
    from tfinpaint.search import SearchSettings

    base = tmp_path_factory.mktemp("export") / "tiny"
    export(tiny_run, base, settings=SearchSettings(iterations=20, restarts=2))
    return base
