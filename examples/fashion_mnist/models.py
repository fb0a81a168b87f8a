"""LeNet-5 with ReLU and max-pooling (the "modern" LeNet of D2L), in Flax NNX.

Written the way Flax users write it: `nnx.Conv`, `nnx.relu`, `nnx.max_pool`,
`nnx.Linear`, NHWC images. This is the model on GPU and TPU; on CPU the
example runs `lenet_patches.LeNetPatches`, the same parameters computed in a
layout XLA:CPU runs about 3x faster (`train.create_model` chooses).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx


def torch_init(fan_in: int) -> dict[str, Any]:
  """PyTorch's default Conv2d/Linear init: weights and biases U(±1/sqrt(fan_in))."""
  bound = 1.0 / math.sqrt(fan_in)
  return dict(
      kernel_init=nnx.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform"),
      bias_init=lambda key, shape, dtype=jnp.float32: jax.random.uniform(
          key, shape, dtype, -bound, bound),
  )


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
