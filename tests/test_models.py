import keras
import numpy as np
import pytest
import tensorflow as tf

from tfinpaint.models import Discriminator, Generator, build_pair


def paper_param_counts(c: int = 64, z: int = 100) -> tuple[int, int]:
    """Parameters of the paper's 64x64 DCGAN, counted by hand (5x5 kernels; batch norm has
    gamma, beta, moving mean and variance; no conv bias where batch norm follows)."""
    bn = lambda ch: 4 * ch  # noqa: E731
    g = z * 16 * 8 * c + bn(8 * c)
    g += 25 * 8 * c * 4 * c + bn(4 * c)
    g += 25 * 4 * c * 2 * c + bn(2 * c)
    g += 25 * 2 * c * c + bn(c)
    g += 25 * c * 3 + 3  # to_image, with bias, no batch norm
    d = 25 * 3 * c + c  # first conv: bias, no batch norm
    d += 25 * c * 2 * c + bn(2 * c)
    d += 25 * 2 * c * 4 * c + bn(4 * c)
    d += 25 * 4 * c * 8 * c + bn(8 * c)
    d += 4 * 4 * 8 * c + 1
    return g, d


def test_paper_architecture_parameter_count():
    g, d = build_pair(64, 64, 100)
    assert paper_param_counts() == (5_128_643, 4_317_441)
    assert (g.count_params(), d.count_params()) == paper_param_counts()
    assert [lay.filters for lay in g.ups] == [256, 128, 64]
    assert [lay.filters for lay in d.convs] == [64, 128, 256, 512]
    assert g.project.units == 4 * 4 * 512


@pytest.mark.parametrize("size,blocks", [(32, 3), (64, 4), (128, 5)])
def test_shapes_and_ranges(size, blocks):
    g, d = build_pair(size, 8, 12, channels=3)
    z = tf.random.uniform([2, 12], -1, 1, seed=1)
    x = g(z, training=False)
    assert x.shape == (2, size, size, 3)
    assert float(tf.reduce_max(tf.abs(x[0] - x[1]))) > 1e-3  # G's image depends on z
    assert d(x).shape == (2, 1)
    assert len(g.ups) + 1 == blocks == len(d.convs)


def test_grayscale_and_no_batch_norm():
    g, d = build_pair(32, 4, 8, channels=1, batch_norm=False)
    x = g(tf.zeros([3, 8]))
    assert x.shape == (3, 32, 32, 1) and d(x).shape == (3, 1)
    assert not any(isinstance(v, keras.layers.BatchNormalization) for v in g._flatten_layers())


@pytest.mark.parametrize("bad", [dict(image_size=48), dict(width=0), dict(channels=2)])
def test_rejects_bad_settings(bad):
    with pytest.raises(ValueError, match="Expected"):
        Generator(**bad)


def _check_serialization(model: keras.Model, x, tmp_path):
    config = model.get_config()
    clone = type(model).from_config(config)
    assert clone.get_config() == config
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model)
    np.testing.assert_allclose(loaded(x, training=False), model(x, training=False), rtol=0, atol=0)


def test_serialization_round_trip(tmp_path):
    g, d = build_pair(32, 8, 16)
    z = tf.random.uniform([2, 16], -1, 1, seed=2)
    _check_serialization(g, z, tmp_path)
    _check_serialization(d, g(z), tmp_path)
    assert Discriminator.from_config(d.get_config()).get_config() == {
        "image_size": 32,
        "width": 8,
        "channels": 3,
        "batch_norm": True,
        "bn_momentum": 0.9,
        "spectral_norm": False,
    }


def _sigmas(d):
    """Each kernel's largest singular value, and the estimate D divides it by (one power step from u)."""
    out = []
    for layer in (*d.convs, d.logit):
        w = layer.kernel.numpy().reshape(-1, layer.kernel.shape[-1])
        v = layer.sn_u.numpy() @ w.T
        out.append((np.linalg.svd(w, compute_uv=False)[0], float(np.linalg.norm(v / np.linalg.norm(v) @ w))))
    return out


def test_spectral_norm_divides_each_kernel_by_its_largest_singular_value(tmp_path):
    _, d = build_pair(32, 8, 16, spectral_norm=True)
    assert not any(isinstance(v, keras.layers.BatchNormalization) for v in d._flatten_layers())
    x = tf.random.uniform([4, 32, 32, 3], -1, 1, seed=3)
    u = [layer.sn_u.numpy() for layer in d.convs]
    d(x, training=True)
    assert all((a == layer.sn_u.numpy()).all() for a, layer in zip(u, d.convs))  # calling D leaves u alone
    for _ in range(100):  # the power iteration converges as the training step advances it
        d.advance_spectral_norm()
    for sigma, estimate in _sigmas(d):
        assert sigma * 0.98 < estimate <= sigma * (1 + 1e-5)
    # D with its kernels divided by hand by the estimates computes the same logit
    plain = Discriminator(32, 8, batch_norm=False)
    plain.build((None, 32, 32, 3))
    for mine, theirs, (_, estimate) in zip((*plain.convs, plain.logit), (*d.convs, d.logit), _sigmas(d)):
        mine.kernel.assign(theirs.kernel.numpy() / estimate)
        mine.bias.assign(theirs.bias.numpy())
    np.testing.assert_allclose(plain(x), d(x), rtol=1e-4, atol=1e-5)
    _check_serialization(d, x, tmp_path)
    assert d.get_config()["spectral_norm"] is True
