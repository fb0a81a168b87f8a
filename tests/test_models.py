"""The example's two LeNets: `models.LeNet` (nnx.Conv, nnx.max_pool) and
`models.LeNetPatches` (matrix products over patches) hold the same
parameters and compute the same logits and gradients from them."""

import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "fashion_mnist"
sys.path.insert(0, str(EXAMPLE))

import models  # noqa: E402  pylint: disable=wrong-import-position
import train  # noqa: E402  pylint: disable=wrong-import-position


def _batch(n, seed):
  rng = np.random.default_rng(seed)
  return {"image": rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
          "label": rng.integers(0, 10, n).astype(np.int32),
          "weight": np.concatenate([np.ones(n - 3, np.float32), np.zeros(3, np.float32)])}


def _pair(seed):
  """The two models with the same parameters: the patches one gets the xla one's."""
  xla = models.LeNet(rngs=nnx.Rngs(seed))
  patches = models.LeNetPatches(rngs=nnx.Rngs(seed + 1))  # other numbers first
  nnx.update(patches, nnx.state(xla))
  return xla, patches


def test_same_parameter_tree_and_initialisation():
  xla, patches = models.LeNet(rngs=nnx.Rngs(3)), models.LeNetPatches(rngs=nnx.Rngs(3))
  a, b = nnx.to_pure_dict(nnx.state(xla)), nnx.to_pure_dict(nnx.state(patches))
  assert jax.tree.structure(a) == jax.tree.structure(b)
  shapes = {k: v["kernel"].shape for k, v in a.items()}
  assert shapes == {"conv1": (5, 5, 1, 6), "conv2": (5, 5, 6, 16), "fc1": (400, 120),
                    "fc2": (120, 84), "fc3": (84, 10)}
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)
  # PyTorch's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases.
  for name, fan_in in (("conv1", 25), ("conv2", 150), ("fc1", 400), ("fc2", 120), ("fc3", 84)):
    for leaf in a[name].values():
      assert np.abs(leaf).max() <= 1 / np.sqrt(fan_in) and np.abs(leaf).max() > 0.8 / np.sqrt(fan_in)


@pytest.mark.parametrize("seed", [0])
def test_same_logits_and_gradients(seed):
  xla, patches = _pair(seed)
  batch = jax.tree.map(jnp.asarray, _batch(64, seed))
  images = (batch["image"].astype(jnp.float32) / 255.0 - 0.5) / 0.5
  np.testing.assert_allclose(patches(images[..., None]), xla(images[..., None]), rtol=1e-5, atol=1e-6)

  def grads(model):
    g, stats = jax.jit(nnx.grad(train.loss_and_metrics, has_aux=True))(model, batch)
    return nnx.to_pure_dict(g), stats

  (ga, sa), (gb, sb) = grads(xla), grads(patches)
  for key in ("loss_sum", "correct", "count"):
    np.testing.assert_allclose(sb[key], sa[key], rtol=1e-6)
  for x, y in zip(jax.tree.leaves(gb), jax.tree.leaves(ga), strict=True):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
  assert max(np.abs(x).max() for x in jax.tree.leaves(ga)) > 1e-2  # gradients that mean something


def test_max_pool_gradient_goes_to_the_first_maximum():
  # Ties in most windows: lax.reduce_window's gradient (what nnx.max_pool
  # differentiates to) goes to the first maximum, and so must the custom VJP.
  x = jnp.asarray(np.random.default_rng(0).integers(0, 2, (2, 4, 4, 3)), jnp.float32)  # (C, H, W, B)
  w = jnp.arange(1.0, 25.0).reshape(2, 2, 2, 3)  # a weight per output
  got = jax.grad(lambda x: jnp.sum(models.max_pool_2x2(x) * w))(x)
  to_nhwc = lambda a: a.transpose(3, 1, 2, 0)
  ref = jax.grad(lambda y: jnp.sum(nnx.max_pool(y, (2, 2), strides=(2, 2)) * to_nhwc(w)))(to_nhwc(x))
  np.testing.assert_array_equal(got, to_nhwc(ref))
  np.testing.assert_array_equal(models.max_pool_2x2(x),
                                to_nhwc(nnx.max_pool(to_nhwc(x), (2, 2), strides=(2, 2))))


@pytest.mark.parametrize("impl, cls", [("xla", models.LeNet), ("patches", models.LeNetPatches),
                                       ("auto", models.LeNetPatches)])  # the tests run on CPU
def test_conv_impl_picks_the_model(impl, cls):
  assert type(train.create_model(train.Config(conv_impl=impl))) is cls
