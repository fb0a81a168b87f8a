"""Flax serialization: ``to_bytes``/``from_bytes`` and ``to_state_dict``/
``from_state_dict`` round trips of every schedule case and of optimizer states
holding schedules (a run restored mid-way continues bit for bit), registered
whether flax is imported before or after lrjax (each order in a fresh
process), and lrjax not importing flax."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import serialization

import lrjax
from cases import CASES


def _zeros_like(tree):
  """The restore target: `tree`'s structure, every number zero."""
  return jax.tree.map(jnp.zeros_like, tree)


def _assert_same(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), a, b)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_schedule_round_trips(case):
  # The same pytree (structure, static settings, every leaf): the same schedule.
  s = case.build()
  restored = serialization.from_bytes(_zeros_like(s), serialization.to_bytes(s))
  _assert_same(restored, s)
  state_dict = serialization.to_state_dict(s)
  assert isinstance(state_dict, dict)
  _assert_same(serialization.from_state_dict(_zeros_like(s), state_dict), s)


def test_state_dict_holds_the_numbers_by_field_name():
  s = lrjax.cosine_decay(0.3, warmup_steps=5, decay_steps=20) * 0.5
  d = serialization.to_state_dict(s)
  assert set(d) == {"schedules"}
  np.testing.assert_allclose(d["schedules"]["0"]["peak_value"], 0.3)
  np.testing.assert_allclose(d["schedules"]["1"]["value"], 0.5)
  with pytest.raises(ValueError, match="from_state_dict: the state of CosineDecay holds"):
    serialization.from_state_dict(lrjax.cosine_decay(0.1, decay_steps=3), {"value": 1.0})


PARAMS = {"w": jnp.linspace(-1.0, 1.0, 6), "b": jnp.ones(2)}


def _grads(i, params):
  return jax.tree.map(lambda p: p + 0.5 * jnp.sin(7.0 * p + 0.37 * i), params)


def _tx(scale):
  """Two groups, one with a plateau: `scale` changes every number, not the
  structure (the restore target is built with another)."""
  return optax.multi_transform(
      {"body": lrjax.inject_hyperparams(optax.adam)(
          learning_rate=lrjax.warmup(lrjax.cosine_decay(0.1 * scale, decay_steps=12), steps=3),
          b1=lrjax.one_cycle_momentum(total_steps=15)),
       "head": optax.chain(
           lrjax.inject_hyperparams(optax.sgd)(learning_rate=lrjax.constant(0.2 * scale)),
           lrjax.reduce_on_plateau(factor=0.5, patience=1))},
      {"w": "body", "b": "head"})


def _run(tx, params, state, steps):
  update = jax.jit(tx.update)
  for i in steps:
    updates, state = update(_grads(i, params), state, params)
    params = optax.apply_updates(params, updates)
    state = lrjax.observe_plateau(state, float(np.cos(i)))
  return params, state


def test_optimizer_state_restored_mid_run_continues_bit_for_bit():
  tx = _tx(1.0)
  whole = _run(tx, PARAMS, tx.init(PARAMS), range(16))
  half = _run(tx, PARAMS, tx.init(PARAMS), range(8))
  target = (PARAMS, _tx(3.0).init(PARAMS))
  restored = serialization.from_bytes(target, serialization.to_bytes(half))
  _assert_same(restored, half)
  held = lrjax.schedules(restored[1], group="head")["learning_rate"]
  np.testing.assert_allclose(held(0), 0.2)  # the checkpoint's, not the target's 0.6
  _assert_same(_run(tx, *restored, range(8, 16)), whole)
  assert float(lrjax.plateau_scale(whole[1], group="head")) < 1.0  # the plateau acted


SCRIPT = textwrap.dedent("""
    import sys
    if sys.argv[1] == "flax_first":
      from flax import serialization
      import lrjax
    else:
      import lrjax
      assert "flax" not in sys.modules, "lrjax imported flax"
      from flax import serialization
    import jax.numpy as jnp, optax
    s = lrjax.sequence([lrjax.constant(0.1), lrjax.linear(0.1, end_value=0.0, steps=9)],
                       boundaries=[5])
    target = lrjax.sequence([lrjax.constant(0.0), lrjax.linear(0.0, end_value=0.0, steps=1)],
                            boundaries=[1])
    back = serialization.from_bytes(target, serialization.to_bytes(s))
    tx = lrjax.inject_hyperparams(optax.sgd)(learning_rate=s)
    state = serialization.from_state_dict(
        lrjax.inject_hyperparams(optax.sgd)(learning_rate=target).init(jnp.zeros(2)),
        serialization.to_state_dict(tx.init(jnp.zeros(2))))
    print(f"{float(back(7)):.6f} {float(state.schedules['learning_rate'](7)):.6f}")
""")


@pytest.mark.parametrize("order", ["flax_first", "lrjax_first"])
def test_registered_in_either_import_order(order):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-c", SCRIPT, order], capture_output=True,
                       text=True, env=env, timeout=120, check=False)
  assert out.returncode == 0, out.stderr[-2000:]
  expected = 0.1 * (1 - (7 - 5) / 9)  # the linear phase, two steps in
  assert out.stdout.split() == [f"{expected:.6f}"] * 2
