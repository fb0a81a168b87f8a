"""LeNet-5 with ReLU and max-pooling (the "modern" LeNet of D2L), in Flax NNX.

`LeNet` is the model as Flax users write it, for GPU and TPU. `LeNetPatches`
subclasses it with a ``__call__`` that computes the same logits from the same
parameters with each convolution as one matrix product over patches: about 3x
faster on XLA:CPU, whose backward convolutions and pooling gradient are slow.
"""

import functools
import math

import jax
import jax.numpy as jnp
from flax import nnx


def torch_init(fan_in: int) -> dict:
  """PyTorch's default Conv2d/Linear init: weights and biases U(±1/sqrt(fan_in))."""
  bound = 1.0 / math.sqrt(fan_in)
  return dict(kernel_init=nnx.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform"),
              bias_init=functools.partial(jax.random.uniform, minval=-bound, maxval=bound))


class LeNet(nnx.Module):
  """LeNet-5: two 5x5 convolutions, each followed by ReLU and 2x2 max-pooling,
  then three dense layers (120, 84, 10), initialised as PyTorch does."""

  def __init__(self, *, rngs: nnx.Rngs):
    self.conv1 = nnx.Conv(1, 6, (5, 5), padding=2, rngs=rngs, **torch_init(25))
    self.conv2 = nnx.Conv(6, 16, (5, 5), padding="VALID", rngs=rngs, **torch_init(150))
    self.fc1 = nnx.Linear(16 * 5 * 5, 120, rngs=rngs, **torch_init(400))
    self.fc2 = nnx.Linear(120, 84, rngs=rngs, **torch_init(120))
    self.fc3 = nnx.Linear(84, 10, rngs=rngs, **torch_init(84))

  def __call__(self, x: jax.Array) -> jax.Array:
    """Logits (B, 10) for images (B, 28, 28, 1) scaled to [-1, 1]."""
    x = nnx.max_pool(nnx.relu(self.conv1(x)), (2, 2), strides=(2, 2))  # (B, 14, 14, 6)
    x = nnx.max_pool(nnx.relu(self.conv2(x)), (2, 2), strides=(2, 2))  # (B, 5, 5, 16)
    x = x.reshape(x.shape[0], -1)  # (B, 400)
    x = nnx.relu(self.fc1(x))
    x = nnx.relu(self.fc2(x))
    return self.fc3(x)


def _pool_windows(x):
  """The four elements of each 2x2 window of x (C, H, W, B), as four arrays."""
  return x[:, 0::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 0::2], x[:, 1::2, 1::2]


@jax.custom_vjp
def max_pool_2x2(x: jax.Array) -> jax.Array:
  """2x2 max-pooling with stride 2 over axes 1 and 2 of x (C, H, W, B).

  The gradient goes to the first maximum of each window, as `nnx.max_pool`'s
  does, in one fused elementwise pass.
  """
  a, b, c, d = _pool_windows(x)
  return jnp.maximum(jnp.maximum(a, b), jnp.maximum(c, d))


def _max_pool_fwd(x):
  y = max_pool_2x2(x)
  return y, (x, y)


def _max_pool_bwd(res, g):
  x, y = res
  a, b, c, d = _pool_windows(x)
  first_a = a == y
  first_b = ~first_a & (b == y)
  first_c = ~(first_a | first_b) & (c == y)
  first_d = ~(first_a | first_b | first_c)
  ga, gb, gc, gd = (jnp.where(m, g, 0.0) for m in (first_a, first_b, first_c, first_d))
  rows = jnp.stack([jnp.stack([ga, gb], axis=3), jnp.stack([gc, gd], axis=3)], axis=2)
  return (rows.reshape(x.shape),)  # (C, H/2, 2, W/2, 2, B) -> (C, H, W, B)


max_pool_2x2.defvjp(_max_pool_fwd, _max_pool_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def conv_patches(x: jax.Array, kh: int, kw: int) -> jax.Array:
  """The (kh, kw, C, oh, ow, B) patches of x (C, H, W, B) for a VALID convolution.

  The gradient adds each patch's cotangent back in place, about 2x faster on a
  CPU than the transpose of the slices that autodiff builds.
  """
  _, h, w, _ = x.shape
  oh, ow = h - kh + 1, w - kw + 1
  cols = jnp.stack([x[:, :, j:j + ow] for j in range(kw)])     # (kw, C, H, ow, B)
  return jnp.stack([cols[:, :, i:i + oh] for i in range(kh)])  # (kh, kw, C, oh, ow, B)


def _conv_patches_fwd(x, kh, kw):
  return conv_patches(x, kh, kw), x.shape


def _conv_patches_bwd(kh, kw, shape, g):
  oh, ow = g.shape[3:5]
  dx = jnp.zeros(shape, g.dtype)
  for i in range(kh):
    for j in range(kw):
      dx = dx.at[:, i:i + oh, j:j + ow].add(g[i, j])
  return (dx,)


conv_patches.defvjp(_conv_patches_fwd, _conv_patches_bwd)


def conv_relu_pool(x: jax.Array, kernel: jax.Array, bias: jax.Array, padding: int) -> jax.Array:
  """``max_pool_2x2(relu(conv(x, kernel) + bias))`` for x (C, H, W, B).

  `kernel` is (kh, kw, C, O), as `nnx.Conv` holds it. Pooling comes before the
  bias and the ReLU (both monotone, the bias one number per channel): the same
  values from a 4x smaller array.
  """
  kh, kw, cin, cout = kernel.shape
  x = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  patches = conv_patches(x, kh, kw)  # (kh, kw, C, oh, ow, B)
  y = kernel.reshape(kh * kw * cin, cout).T @ patches.reshape(kh * kw * cin, -1)
  y = max_pool_2x2(y.reshape(cout, *patches.shape[3:]))
  return jax.nn.relu(y + bias[:, None, None, None])


class LeNetPatches(LeNet):
  """`LeNet` computed by `conv_relu_pool`, the batch as the last axis: the same
  logits to float rounding (tested)."""

  def __call__(self, x: jax.Array) -> jax.Array:
    """Logits (B, 10) for images (B, 28, 28, 1) scaled to [-1, 1]."""
    x = jnp.transpose(x, (3, 1, 2, 0))  # (1, 28, 28, B)
    x = conv_relu_pool(x, self.conv1.kernel[...], self.conv1.bias[...], padding=2)  # (6, 14, 14, B)
    x = conv_relu_pool(x, self.conv2.kernel[...], self.conv2.bias[...], padding=0)  # (16, 5, 5, B)
    x = jnp.transpose(x, (3, 1, 2, 0)).reshape(x.shape[-1], -1)  # (B, 400), as NHWC flattens
    x = nnx.relu(self.fc1(x))
    x = nnx.relu(self.fc2(x))
    return self.fc3(x)


def create(conv_impl: str, seed: int) -> LeNet:
  """A fresh LeNet from `seed`: ``"xla"`` `LeNet`, ``"patches"`` `LeNetPatches`,
  ``"auto"`` `LeNetPatches` on CPU and `LeNet` elsewhere."""
  if conv_impl == "auto":
    conv_impl = "patches" if jax.default_backend() == "cpu" else "xla"
  return (LeNetPatches if conv_impl == "patches" else LeNet)(rngs=nnx.Rngs(seed))
