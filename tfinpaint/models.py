"""The paper's DCGAN (Radford et al., 2016; Yeh et al., 2016, section 4.1) as Keras models.

G maps z in U[-1, 1]^latent_dim to an image in [-1, 1]: a dense layer to a 4x4 map of
8c channels (for 64x64), then stride-2 transposed convolutions that halve the channels
and double the size, ending in tanh. D mirrors it with stride-2 convolutions that
double the channels, LeakyReLU 0.2, batch norm on all but the first, and one logit.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import layers

from tfinpaint import check_backend
from tfinpaint.constants import IMAGE_SIZES
from tfinpaint.errors import ArgumentError

check_backend()  # every Keras model of the package comes from here

KERNEL = 5


def num_blocks(image_size: int) -> int:
    """Number of stride-2 layers between a 4x4 map and an image of `image_size`."""
    if image_size not in IMAGE_SIZES:
        raise ArgumentError(f"Expected an image size in {IMAGE_SIZES}, got {image_size}")
    return int(math.log2(image_size // 4))


def _norm(batch_norm: bool, momentum: float, name: str) -> layers.Layer:
    # Synchronized under a strategy with several replicas: the batch statistics are those
    # of the global batch, so training on N replicas is the same computation as on one.
    # Not otherwise: Keras's synchronized moments cost 3% of a training step on one device.
    if batch_norm:
        synchronized = tf.distribute.get_strategy().num_replicas_in_sync > 1
        return layers.BatchNormalization(momentum=momentum, epsilon=1e-5, synchronized=synchronized, name=name)
    return layers.Identity(name=name)


def _config(model: keras.Model) -> dict:
    """A model's constructor arguments (its class's `CONFIG`), as `get_config` gives them."""
    return {name: getattr(model, name) for name in model.CONFIG}


def _check_common(width: int, channels: int) -> None:
    if width < 1:
        raise ArgumentError(f"Expected a positive width, got {width}")
    if channels not in (1, 3):
        raise ArgumentError(f"Expected 1 or 3 channels, got {channels}")


@keras.saving.register_keras_serializable(package="tfinpaint")
class Generator(keras.Model):
    """G: `[batch, latent_dim]` in [-1, 1] to `[batch, size, size, channels]` in [-1, 1].

    Args:
        image_size: 32, 64 or 128; the number of upsampling blocks follows from it.
        width: channels of the last hidden layer (the paper's c = 64); the first
            has width * 2**(blocks - 1), 512 for 64x64 images.
        latent_dim: size of z (100 in the paper).
        channels: 3 (RGB) or 1 (grayscale).
        batch_norm: batch norm after every hidden layer, as in DCGAN.
        bn_momentum: momentum of the batch-norm moving averages.
    """

    def __init__(
        self,
        image_size: int = 64,
        width: int = 64,
        latent_dim: int = 100,
        channels: int = 3,
        batch_norm: bool = True,
        bn_momentum: float = 0.9,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_common(width, channels)
        if latent_dim < 1:
            raise ArgumentError(f"Expected a positive latent_dim, got {latent_dim}")
        self.image_size = image_size
        self.width = width
        self.latent_dim = latent_dim
        self.channels = channels
        self.batch_norm = batch_norm
        self.bn_momentum = bn_momentum
        blocks = num_blocks(image_size)
        top = width * 2 ** (blocks - 1)
        self.project = layers.Dense(4 * 4 * top, use_bias=not batch_norm, name="project")
        self.reshape = layers.Reshape((4, 4, top))
        self.project_norm = _norm(batch_norm, bn_momentum, "project_norm")
        self.ups = []
        self.norms = []
        for i in range(1, blocks):
            self.ups.append(
                layers.Conv2DTranspose(
                    top // 2**i,
                    KERNEL,
                    strides=2,
                    padding="same",
                    use_bias=not batch_norm,
                    name=f"up{i}",
                )
            )
            self.norms.append(_norm(batch_norm, bn_momentum, f"up{i}_norm"))
        self.to_image = layers.Conv2DTranspose(channels, KERNEL, strides=2, padding="same", name="to_image")

    def call(self, z, training=False):
        return self.from_features(self.features(z, 0, training=training), 0, training=training)

    def features(self, z, depth: int, training=False):
        """G's activations after its first `depth` upsampling blocks: depth 0 is the projected
        4x4 map, each further block doubles its size (`[batch, 4 * 2**depth, ..., channels]`)."""
        x = self.reshape(self.project(z))
        x = keras.ops.relu(self.project_norm(x, training=training))
        for up, norm in zip(self.ups[:depth], self.norms[:depth]):
            x = keras.ops.relu(norm(up(x), training=training))
        return x

    def from_features(self, x, depth: int, training=False):
        """The rest of G: the image drawn from the activations `features(z, depth)` returns."""
        for up, norm in zip(self.ups[depth:], self.norms[depth:]):
            x = keras.ops.relu(norm(up(x), training=training))
        return keras.ops.tanh(self.to_image(x))

    def build(self, input_shape):
        self.call(keras.KerasTensor(input_shape))
        self.built = True

    CONFIG = ("image_size", "width", "latent_dim", "channels", "batch_norm", "bn_momentum")

    def get_config(self):
        return _config(self)


def _power_step(layer: layers.Layer):
    """One power iteration on `layer.kernel` as a matrix `w` `[inputs, units]` from its stored
    u: (w, v, the new u), v and u unit vectors that take no gradient."""
    w = keras.ops.reshape(layer.kernel, (-1, layer.kernel.shape[-1]))
    v = keras.ops.stop_gradient(_unit(keras.ops.matmul(layer.sn_u, keras.ops.transpose(w))))
    return w, v, keras.ops.stop_gradient(_unit(keras.ops.matmul(v, w)))


def _normalized_kernel(layer: layers.Layer) -> tf.Tensor:
    """`layer.kernel / sigma`, sigma its largest singular value estimated from the stored u
    (Miyato et al., 2018); the gradient flows through sigma. Calling the layer never changes
    u: the training step advances it (`Discriminator.advance_spectral_norm`), outside the
    replicas of a distributed step, so no replica waits on another for it."""
    w, v, u = _power_step(layer)
    return layer.kernel / keras.ops.sum(keras.ops.matmul(v, w) * u)


def _unit(x):
    return x / keras.ops.maximum(keras.ops.sqrt(keras.ops.sum(x * x)), 1e-12)


class _SpectrallyNormalized:
    """What a spectrally normalised layer adds to Keras's: the stored u, built with the kernel
    and saved with it (Keras's Conv2D and Dense save their kernel and bias alone, for
    quantisation, so the generic `Layer` saving is used)."""

    def build(self, input_shape):
        super().build(input_shape)
        self.sn_u = self.add_weight(
            shape=(1, self.kernel.shape[-1]),
            initializer=keras.initializers.RandomNormal(),
            trainable=False,
            name="sn_u",
        )

    save_own_variables = layers.Layer.save_own_variables
    load_own_variables = layers.Layer.load_own_variables


@keras.saving.register_keras_serializable(package="tfinpaint")
class SpectralConv2D(_SpectrallyNormalized, layers.Conv2D):
    """A `Conv2D` whose kernel is divided by its spectral norm (`_normalized_kernel`)."""

    def call(self, inputs):
        x = self.convolution_op(inputs, _normalized_kernel(self))
        return tf.nn.bias_add(x, self.bias) if self.use_bias else x


@keras.saving.register_keras_serializable(package="tfinpaint")
class SpectralDense(_SpectrallyNormalized, layers.Dense):
    """A `Dense` layer whose kernel is divided by its spectral norm (`_normalized_kernel`)."""

    def call(self, inputs):
        x = keras.ops.matmul(inputs, _normalized_kernel(self))
        return tf.nn.bias_add(x, self.bias) if self.use_bias else x


def _down_stack(
    model: keras.Model, image_size: int, width: int, batch_norm: bool, momentum: float, spectral_norm: bool = False
) -> None:
    """D's stride-2 convolutions (doubling the channels from `width`) and their norms, as
    `model.convs` and `model.norms`; appended in turn, which fixes the order of the weights.
    With `spectral_norm` the convolutions are spectrally normalised and nothing else is."""
    model.convs, model.norms = [], []
    convs, norms = model.convs, model.norms
    conv = SpectralConv2D if spectral_norm else layers.Conv2D
    batch_norm = batch_norm and not spectral_norm
    for i in range(num_blocks(image_size)):
        first = i == 0
        convs.append(
            conv(width * 2**i, KERNEL, strides=2, padding="same", use_bias=first or not batch_norm, name=f"down{i}")
        )
        norms.append(layers.Identity(name=f"down{i}_norm") if first else _norm(batch_norm, momentum, f"down{i}_norm"))


def _down(x, convs, norms, training):
    for conv, norm in zip(convs, norms):
        x = keras.ops.leaky_relu(norm(conv(x), training=training), negative_slope=0.2)
    return x


@keras.saving.register_keras_serializable(package="tfinpaint")
class Discriminator(keras.Model):
    """D: `[batch, size, size, channels]` in [-1, 1] to one real/fake logit `[batch, 1]`.

    Args:
        image_size: 32, 64 or 128.
        width: channels of the first convolution (c = 64 in the paper), doubled by
            each following one.
        channels: 3 or 1.
        batch_norm: batch norm on all convolutions but the first, as in DCGAN.
        bn_momentum: momentum of the batch-norm moving averages.
        spectral_norm: spectral normalisation of every convolution and of the logit
            (Miyato et al., 2018) in place of batch norm.
    """

    def __init__(
        self,
        image_size: int = 64,
        width: int = 64,
        channels: int = 3,
        batch_norm: bool = True,
        bn_momentum: float = 0.9,
        spectral_norm: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_common(width, channels)
        self.image_size = image_size
        self.width = width
        self.channels = channels
        self.batch_norm = batch_norm
        self.bn_momentum = bn_momentum
        self.spectral_norm = spectral_norm
        _down_stack(self, image_size, width, batch_norm, bn_momentum, spectral_norm)
        self.flatten = layers.Flatten()
        self.logit = (SpectralDense if spectral_norm else layers.Dense)(1, name="logit")

    def call(self, images, training=False):
        return self.logit(self.flatten(_down(images, self.convs, self.norms, training)))

    def advance_spectral_norm(self) -> None:
        """One power iteration for each spectrally normalised layer (none without `spectral_norm`):
        the training step calls it once after each update of D."""
        for layer in (*self.convs, self.logit):
            if hasattr(layer, "sn_u"):
                layer.sn_u.assign(_power_step(layer)[2])

    def build(self, input_shape):
        self.call(keras.KerasTensor(input_shape))
        self.built = True

    CONFIG = ("image_size", "width", "channels", "batch_norm", "bn_momentum", "spectral_norm")

    def get_config(self):
        return _config(self)


@keras.saving.register_keras_serializable(package="tfinpaint")
class Encoder(keras.Model):
    """E: a masked image and its mask to the z that G needs, `[batch, latent_dim]` in [-1, 1].

    D's architecture with the mask as one more input channel (the image's hole is zeroed
    first, so E never reads it) and a tanh head of `latent_dim` instead of D's logit. It
    gives the latent search its starting point (`SearchSettings.init`).

    Args:
        image_size: 32, 64 or 128.
        width: channels of the first convolution, doubled by each following one.
        latent_dim: size of z.
        channels: 3 or 1 (the image's; E sees one more).
        batch_norm: batch norm on all convolutions but the first.
        bn_momentum: momentum of the batch-norm moving averages.
    """

    def __init__(
        self,
        image_size: int = 64,
        width: int = 64,
        latent_dim: int = 100,
        channels: int = 3,
        batch_norm: bool = True,
        bn_momentum: float = 0.9,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_common(width, channels)
        _down_stack(self, image_size, width, batch_norm, bn_momentum)
        self.flatten = layers.Flatten()
        self.image_size, self.width, self.latent_dim = image_size, width, latent_dim
        self.channels, self.batch_norm, self.bn_momentum = channels, batch_norm, bn_momentum
        self.head = layers.Dense(latent_dim, name="latent")

    def call(self, images, masks, training=False):
        known = keras.ops.cast(masks > 0.5, images.dtype)
        x = keras.ops.concatenate([images * known, known * 2.0 - 1.0], axis=-1)
        return keras.ops.tanh(self.head(self.flatten(_down(x, self.convs, self.norms, training))))

    def build(self, input_shape):
        shape = tuple(input_shape)
        self.call(keras.KerasTensor(shape), keras.KerasTensor(shape[:-1] + (1,)))
        self.built = True

    CONFIG = ("image_size", "width", "latent_dim", "channels", "batch_norm", "bn_momentum")

    def get_config(self):
        return _config(self)


def build_encoder(image_size=64, width=64, latent_dim=100, channels=3, batch_norm=True) -> Encoder:
    """A built encoder for images of `image_size` x `image_size` x `channels`."""
    e = Encoder(image_size, width, latent_dim, channels, batch_norm, name="encoder")
    e.build((None, image_size, image_size, channels))
    return e


def build_pair(
    image_size: int = 64,
    width: int = 64,
    latent_dim: int = 100,
    channels: int = 3,
    batch_norm: bool = True,
    spectral_norm: bool = False,
) -> tuple[Generator, Discriminator]:
    """A built (G, D) pair with matching sizes (`spectral_norm`: D's, see `Discriminator`)."""
    g = Generator(image_size, width, latent_dim, channels, batch_norm, name="generator")
    d = Discriminator(image_size, width, channels, batch_norm, spectral_norm=spectral_norm, name="discriminator")
    g.build((None, latent_dim))
    d.build((None, image_size, image_size, channels))
    return g, d
