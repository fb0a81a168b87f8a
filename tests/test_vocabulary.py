"""One vocabulary: every registered constructor's arguments follow the rule.

The rule (README, "Design and conventions"):

- `init_value` is where a schedule starts: the first argument of a pure decay,
  and the start of the warmup in a constructor that can warm up, whose first
  argument is `peak_value`, the top the warmup reaches (with no warmup its
  first rate is the peak). `end_value` is the final rate. A band is
  `base_value` to `max_value`.
- A length counts its own phase: `warmup_steps` the warmup, `decay_steps` the
  decay after it, `stable_steps` the flat part; `total_steps` is the whole
  schedule, where a constructor takes the whole.
- A step where a phase decided later begins is `start` (`cooldown`: not
  `reduce_on_plateau`'s `cooldown=`, a count of evaluations).
- A curve's shape is `shape=` (`warmup_shape=` / `decay_shape=` where there
  are two), spelled "linear", "cosine", "1-sqrt".
- Every argument after the first is keyword-only.

The tests walk the registry, so a new constructor is checked the day it is
registered (and fails here until it has an entry in `BUILD`).
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import lrjax
from lrjax import _registry

NAMES = _registry.names()

# The constructors that can warm up (one_cycle's warmup is its pct_start).
WARMS_UP = {"cosine_decay", "inverse_sqrt", "one_cycle", "rex", "warmup_stable_decay"}
# The constructors whose first argument is neither a rate nor a schedule's start.
OTHER_FIRST = {"constant": "value", "cooldown": "schedule", "per_epoch": "schedule",
               "sequence": "schedules", "switch": "schedules", "warmup": "schedule",
               "with_noise": "schedule"}
LENGTHS = {"warmup_steps", "decay_steps", "stable_steps", "total_steps", "cycle_steps"}
SHAPE_NAMES = {"shape", "warmup_shape", "decay_shape"}
SHAPES = ("linear", "cosine", "1-sqrt")
# Names other libraries use, that lrjax does not borrow (the porting table maps
# them), and names this project used before it had one vocabulary.
FORBIDDEN = {
    "anneal", "anneal_strategy", "warmup_init", "warmup_target", "warmup_begin_lr",
    "warmup_init_lr", "lr", "learning_rate", "base_lr", "max_lr", "min_lr", "eta_min",
    "final_lr", "alpha", "T_max", "t_max", "T_0", "max_update", "transition_steps",
    "transition_begin", "initial_learning_rate", "end_learning_rate", "min_value",
}

# A small valid call of every constructor: positional arguments, keywords.
BUILD = {
    "constant": ((), dict(value=0.2)),
    "cooldown": ((), dict(schedule=lrjax.constant(0.3), start=5, decay_steps=10)),
    "cosine_decay": ((), dict(peak_value=0.3, decay_steps=10)),
    "cosine_restarts": ((), dict(init_value=0.2, cycle_steps=10)),
    "cyclic": ((), dict(base_value=0.01, max_value=0.1, step_size_up=5)),
    "cyclic_momentum": ((), dict(step_size_up=5)),
    "exponential_decay": ((), dict(init_value=0.2, decay_steps=10, decay_rate=0.5)),
    "inverse_sqrt": ((), dict(peak_value=0.3)),
    "inverse_time_decay": ((), dict(init_value=0.2, decay_steps=10, decay_rate=0.5)),
    "linear": ((), dict(init_value=0.2, end_value=0.0, steps=10)),
    "multistep": ((), dict(init_value=0.2, milestones=[5], gamma=0.5)),
    "one_cycle": ((), dict(peak_value=0.3, total_steps=100)),
    "one_cycle_momentum": ((), dict(total_steps=100)),
    "per_epoch": ((), dict(schedule=lrjax.constant(0.2), steps_per_epoch=3)),
    "piecewise_constant": ((), dict(boundaries=[5], values=[0.2, 0.1])),
    "piecewise_interpolate": ((), dict(boundaries=[5], values=[0.2, 0.1])),
    "polynomial_decay": ((), dict(init_value=0.2, decay_steps=10)),
    "product": ((lrjax.constant(0.2), lrjax.constant(0.5)), {}),
    "rex": ((), dict(peak_value=0.3, decay_steps=10)),
    "sequence": ((), dict(schedules=[lrjax.constant(0.2), lrjax.constant(0.1)],
                          boundaries=[5])),
    "step_decay": ((), dict(init_value=0.2, step_size=5, gamma=0.5)),
    "switch": ((), dict(schedules=[lrjax.constant(0.2), lrjax.constant(0.1)], index=1)),
    "tanh_decay": ((), dict(init_value=0.2, decay_steps=10)),
    "warmup": ((), dict(schedule=lrjax.constant(0.3), steps=4)),
    "with_noise": ((), dict(schedule=lrjax.constant(0.3), seed=0)),
    "warmup_stable_decay": ((), dict(peak_value=0.3, warmup_steps=4, stable_steps=3,
                                     decay_steps=10)),
}


def _params(name):
  return _registry.signature(name).parameters


def _build(name, **overrides):
  args, kwargs = BUILD[name]
  return _registry.lookup(name)(*args, **{**kwargs, **overrides})


def test_every_constructor_is_public_and_has_a_call_here():
  assert set(NAMES) <= set(lrjax.__all__)
  assert sorted(BUILD) == NAMES, "add the new constructor to BUILD (and check its names)"
  for name in NAMES:
    assert _build(name).name == name


@pytest.mark.parametrize("name", NAMES)
def test_only_the_first_argument_is_positional(name):
  params = list(_params(name).values())
  for p in params[1:]:
    assert p.kind in (p.KEYWORD_ONLY, p.VAR_POSITIONAL), f"{name}: {p.name} must be keyword-only"
  # No **kwargs: every argument has its name in the signature.
  assert all(p.kind is not inspect.Parameter.VAR_KEYWORD for p in params)


@pytest.mark.parametrize("name", NAMES)
def test_no_borrowed_or_old_names(name):
  bad = set(_params(name)) & FORBIDDEN
  assert not bad, f"{name} takes {sorted(bad)}; see the vocabulary"


@pytest.mark.parametrize("name", NAMES)
def test_the_first_argument_is_peak_value_iff_it_can_warm_up(name):
  params = _params(name)
  first = next(iter(params.values()))
  if name in WARMS_UP:
    assert first.name == "peak_value"
  elif first.kind is first.VAR_POSITIONAL:  # product(*schedules)
    assert name == "product"
  elif name in OTHER_FIRST:
    assert first.name == OTHER_FIRST[name]
  elif first.kind is first.POSITIONAL_OR_KEYWORD:  # a pure decay: where it starts
    assert first.name == "init_value", f"{name}: a decay starts at init_value"
  if name not in WARMS_UP:
    assert "peak_value" not in params, f"{name} cannot warm up: no peak_value"
  if "warmup_steps" in params:
    assert name in WARMS_UP
    # init_value is where its warmup starts, 0 unless given.
    assert params["init_value"].default == 0.0


@pytest.mark.parametrize("name", NAMES)
def test_max_value_only_bounds_a_band(name):
  params = _params(name)
  assert ("max_value" in params) == ("base_value" in params), name


@pytest.mark.parametrize("name", NAMES)
def test_lengths_count_their_own_phase(name):
  params = _params(name)
  steps = {p for p in params if p.endswith("_steps")}
  assert steps <= LENGTHS, f"{name}: unknown lengths {sorted(steps - LENGTHS)}"
  if "total_steps" in params:  # the whole schedule: no phase lengths beside it
    assert not steps & {"warmup_steps", "decay_steps", "stable_steps"}, name


@pytest.mark.parametrize("name", NAMES)
def test_shapes_are_spelled_one_way(name):
  params = _params(name)
  shaped = {p for p in params if "shape" in p or "anneal" in p}
  assert shaped <= SHAPE_NAMES, f"{name}: shape arguments are {sorted(SHAPE_NAMES)}"
  for p in shaped:
    assert params[p].default in SHAPES
    for spelling in ("cos", "Cosine", "lin", "sqrt"):
      with pytest.raises(ValueError, match=f"{name}: {p} must be one of"):
        _build(name, **{p: spelling})
    for spelling in SHAPES:
      try:
        _build(name, **{p: spelling})
      except ValueError as e:  # a constructor may take fewer shapes, not others
        assert f"{p} must be one of" in str(e)
  for p in params.values():
    assert p.default != "cos", f"{name}: {p.name}"


# --- what the words mean, by the rule (not by lrjax's output) --------------------

WARMUP_DECAYS = sorted(n for n in WARMS_UP if "warmup_steps" in _params(n))


@pytest.mark.parametrize("name", WARMUP_DECAYS)
def test_warmup_goes_from_init_value_to_peak_value(name):
  s = _build(name, peak_value=0.3, warmup_steps=4, init_value=0.03)
  np.testing.assert_allclose(s(np.array([0, 2, 4])), [0.03, 0.165, 0.3], rtol=1e-6)
  if name != "warmup_stable_decay":  # there warmup_steps is required
    np.testing.assert_allclose(_build(name, peak_value=0.3)(0), 0.3, rtol=1e-6)


@pytest.mark.parametrize("name", [n for n in WARMUP_DECAYS if "decay_steps" in _params(n)])
def test_decay_steps_start_after_the_warmup(name):
  stable = 3 if "stable_steps" in _params(name) else 0
  s = _build(name, peak_value=0.3, warmup_steps=4, decay_steps=10, end_value=0.01)
  end = 4 + stable + 10  # the phases follow each other
  assert float(s(end - 1)) > 0.01 + 1e-4
  np.testing.assert_allclose(s(np.array([end, end + 1, 10**6])), [0.01] * 3, rtol=1e-6)
  np.testing.assert_allclose(s(4 + stable), 0.3, rtol=1e-6)  # the decay starts at the peak


# Constructors whose rate ends at end_value (cosine_restarts decays towards it
# in every cycle and restarts: it has no end).
ENDING = [n for n in NAMES if "end_value" in _params(n) and n != "cosine_restarts"]


@pytest.mark.parametrize("name", ENDING)
def test_end_value_is_the_final_rate(name):
  s = _build(name, end_value=0.01)
  np.testing.assert_allclose(s(np.array([10**6, 10**7])), [0.01, 0.01], rtol=1e-6)


@pytest.mark.parametrize("name", [n for n in NAMES if next(iter(_params(n))) == "init_value"])
def test_a_decay_starts_at_init_value(name):
  np.testing.assert_allclose(_build(name, init_value=0.2)(0), 0.2, rtol=1e-6)


def test_the_rule_is_not_vacuous():
  # Each rule above must see the constructors it is about.
  assert len(WARMUP_DECAYS) == 4 and len(ENDING) >= 6
  assert sum(next(iter(_params(n))) == "init_value" for n in NAMES) >= 7
  assert any("shape" in _params(n) for n in NAMES)
  assert any("decay_shape" in _params(n) for n in NAMES)
  assert sum("max_value" in _params(n) for n in NAMES) >= 1
  assert inspect.signature(lrjax.warmup).parameters["shape"].default == "linear"
