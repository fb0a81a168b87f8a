"""A plateau inside an optimizer state: its metric, scale and settings.

Feed it a metric, read its scale, read and change its settings, by group.

Each function finds the :class:`ReduceOnPlateauState` states anywhere in an
optimizer state (see `_opt_state`): an optax state, ``nnx.Optimizer``'s
``opt_state``, the ``nnx.State`` of a model and its optimizer; one group's
with ``group=``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from lrjax._opt_state import like, map_states, only_state, states_in, value_of
from lrjax._plateau import (
    HINT,
    SETTINGS,
    ReduceOnPlateauState,
    as_metric,
    check_setting,
    observe,
)

__all__ = [
    "observe_plateau",
    "plateau_scale",
    "plateau_settings",
    "set_plateau_settings",
]

_WHAT = "reduce_on_plateau"
_INSTEAD = "read each one's part of the state"
# Fixed when the transform is built: changing them would make the state's
# statistics (the best value's direction, the window being summed) wrong.
_FIXED = ("mode", "threshold_mode", "accumulation_size")


def observe_plateau(opt_state: Any, value: Any, *, group: Any = None) -> Any:
  """Records one metric observation in every plateau state inside `opt_state`.

  The per-epoch way to feed :func:`reduce_on_plateau` (Keras' and PyTorch's
  pattern of monitoring a validation metric once per epoch). `opt_state` may
  be the transform's own state or any optimizer state holding it: a chain
  (next to an :func:`lrjax.inject_hyperparams` state, or inside one's inner
  state), ``optax.inject_hyperparams``, ``optax.MultiSteps``,
  ``optax.multi_transform`` (one plateau per group: each group's own, or
  only `group`'s), ``nnx.Optimizer``'s ``opt_state`` (whose leaves are
  ``nnx.OptArray`` variables) or the ``nnx.State`` of a model and its
  optimizer. Each plateau state decides with its own settings;
  `accumulation_size` applies here too. Pure: it returns a new state of the
  same structure and leaves `opt_state` untouched. Works eagerly and under
  ``jax.jit`` / ``nnx.jit``.

  Args:
    opt_state: an optimizer state containing at least one
      :class:`ReduceOnPlateauState`.
    value: the metric, a real scalar (Python number or array of size 1).
    group: the group whose plateau observes it; None for every plateau.

  Returns:
    `opt_state` with each plateau state (of `group`) replaced by its
    successor.

  Raises:
    ValueError: if `opt_state` holds no plateau state (or none in `group`:
      the message lists the groups there are), or `value` is not a real
      scalar.

  Example:
    >>> import jax.numpy as jnp, optax, lrjax
    >>> tx = optax.chain(optax.adam(1e-3),
    ...                  lrjax.reduce_on_plateau(mode="max", patience=0))
    >>> state = tx.init(jnp.zeros(2))
    >>> for val_acc in [0.80, 0.85, 0.84]:
    ...   state = lrjax.observe_plateau(state, val_acc)
    >>> print(f"{lrjax.plateau_scale(state):.2f}")
    0.10
  """
  fn = "observe_plateau"
  metric = as_metric(fn, value)

  def step(state: ReduceOnPlateauState) -> ReduceOnPlateauState:
    stats = observe(value_of(state.stats), value_of(state.settings), metric)
    return state._replace(stats=like(state.stats, stats))

  return map_states(fn, opt_state, ReduceOnPlateauState, step, what=_WHAT,
                    hint=HINT, group=group)


def plateau_scale(opt_state: Any, *, group: Any = None, default: Any = None
                  ) -> jax.Array:
  """The current scale of the plateau transform inside `opt_state`.

  For logging: ``lr * plateau_scale(opt_state)`` is the learning rate in use
  with ``optax.chain(optax.sgd(lr), lrjax.reduce_on_plateau())``. Accepts the
  same nested states as :func:`observe_plateau`, eagerly or under ``jit``.
  With ``default=1.0`` it is "the scale, or 1 where there is no plateau", for
  code that logs the rate whether or not the optimizer has one.

  Args:
    opt_state: an optimizer state containing one
      :class:`ReduceOnPlateauState`, or one per group.
    group: the group to read; needed when `opt_state` holds several.
    default: if given, returned (as a float32 array) where `opt_state` holds
      no plateau state (or `group` holds none), instead of raising.

  Returns:
    The scale, a float32 scalar `jax.Array`.

  Raises:
    ValueError: if `opt_state` holds no plateau state (and no `default` is
      given); several and no `group` (the message lists the groups found);
      or `group` holds several, or none and no `default` is given.

  Example:
    >>> import jax.numpy as jnp, optax, lrjax
    >>> tx = optax.chain(optax.sgd(0.1), lrjax.reduce_on_plateau())
    >>> print(f"{lrjax.plateau_scale(tx.init(jnp.zeros(2))):.1f}")
    1.0
    >>> print(f"{lrjax.plateau_scale(optax.sgd(0.1).init(jnp.zeros(2)), default=1.0):.1f}")
    1.0
  """
  fn = "plateau_scale"
  if default is not None and not states_in(opt_state, ReduceOnPlateauState,
                                           group=group):
    return jnp.asarray(default, jnp.float32)
  state = only_state(fn, opt_state, ReduceOnPlateauState, what=_WHAT, hint=HINT,
                     instead=_INSTEAD, group=group)
  return jnp.asarray(state.scale)


def plateau_settings(opt_state: Any, *, group: Any = None) -> dict[str, jax.Array]:
  """The settings a plateau state decides with, by `reduce_on_plateau`'s names.

  Args:
    opt_state: an optimizer state containing one
      :class:`ReduceOnPlateauState`, or one per group.
    group: the group to read; needed when `opt_state` holds several.

  Returns:
    ``factor``, ``patience``, ``threshold``, ``cooldown``, ``min_scale``,
    ``eps`` and ``accumulation_size``, each a float32 scalar `jax.Array`
    (counts are whole numbers). ``mode`` and ``threshold_mode`` are strings
    fixed when the transform is built and are not listed.

  Raises:
    ValueError: as :func:`plateau_scale` without `default`.

  Example:
    >>> import jax.numpy as jnp, optax, lrjax
    >>> tx = optax.chain(optax.sgd(0.1), lrjax.reduce_on_plateau(patience=3))
    >>> got = lrjax.plateau_settings(tx.init(jnp.zeros(2)))
    >>> print(f"{got['factor']:.1f} {got['patience']:.0f}")
    0.1 3
  """
  state = only_state("plateau_settings", opt_state, ReduceOnPlateauState,
                     what=_WHAT, hint=HINT, instead=_INSTEAD, group=group)
  settings = value_of(state.settings)
  return {name: jnp.asarray(settings[i]) for name, i in SETTINGS.items()}


def set_plateau_settings(opt_state: Any, *, group: Any = None, **settings: Any
                         ) -> Any:
  """Changes the settings of the plateau states inside `opt_state`.

  The settings are numbers in the state, so a jitted step is not traced
  again, and the next observation decides with the new ones; the statistics
  (scale, best value, counters) go on. Each value is checked as
  :func:`reduce_on_plateau` checks the argument of that name (a traced one
  is taken as it is). Under ``optax.inject_hyperparams(lrjax.reduce_on_plateau)``
  each update writes its own values into the state instead.

  Args:
    opt_state: an optimizer state containing at least one
      :class:`ReduceOnPlateauState`.
    group: the group whose plateau to change; None for every plateau.
    **settings: any of ``factor``, ``patience``, ``threshold``, ``cooldown``,
      ``min_scale``, ``eps`` and their new values.

  Returns:
    `opt_state` with the settings replaced (`opt_state` itself is untouched).

  Raises:
    ValueError: if no setting is given; a name is not one of the above
      (``mode``, ``threshold_mode`` and ``accumulation_size`` are fixed when
      the transform is built); a value fails :func:`reduce_on_plateau`'s
      check; or `opt_state` holds no plateau state (or none in `group`).

  Example:
    >>> import jax.numpy as jnp, optax, lrjax
    >>> tx = optax.chain(optax.sgd(0.1), lrjax.reduce_on_plateau(patience=5))
    >>> state = lrjax.set_plateau_settings(tx.init(jnp.zeros(2)), patience=0,
    ...                                    factor=0.5)
    >>> for val_loss in [1.0, 1.1]:
    ...   state = lrjax.observe_plateau(state, val_loss)
    >>> print(f"{lrjax.plateau_scale(state):.2f}")
    0.50
  """
  fn = "set_plateau_settings"
  settable = [name for name in SETTINGS if name not in _FIXED]
  if not settings:
    raise ValueError(f"{fn}: give at least one of {settable}")
  checked = {}
  for name, value in settings.items():
    if name in _FIXED:
      raise ValueError(
          f"{fn}: {name} is fixed when reduce_on_plateau is built (changing it "
          f"would invalidate the statistics); settable: {settable}, got "
          f"{name}={value!r}"
      )
    if name not in SETTINGS:
      raise ValueError(
          f"{fn}: {name} is not a setting of reduce_on_plateau; settable: "
          f"{settable}, got {name}={value!r}"
      )
    checked[SETTINGS[name]] = jnp.asarray(check_setting(fn, name, value), jnp.float32)

  def change(state: ReduceOnPlateauState) -> ReduceOnPlateauState:
    vector = value_of(state.settings)
    for i, value in checked.items():
      vector = vector.at[..., i].set(value)
    return state._replace(settings=like(state.settings, vector))

  return map_states(fn, opt_state, ReduceOnPlateauState, change, what=_WHAT,
                    hint=HINT, group=group)
