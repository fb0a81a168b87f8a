"""Schedules inside optax optimizers: `inject_hyperparams` and its state.

Reading and swapping what the state holds (`hyperparams`, `set_hyperparams`,
`schedules`, `branch`) is in `_hyperparams`.

``optax.inject_hyperparams`` keeps a schedule as a closure and only the
number it returned in the state, so a new schedule is a new program. Here the
schedule itself (its leaves) is part of the optimizer state: swapped without a
new trace, stacked and swept under `jax.vmap`, saved and restored with the
checkpoint.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax._base import Schedule
from lrjax._opt_state import is_variable, value_of

__all__ = [
    "HINT",
    "InjectHyperparamsState",
    "as_leaves",
    "check_value",
    "evaluate",
    "inject_hyperparams",
]

_NUMBER_TYPES = (int, float, np.number, np.ndarray, jax.Array)

HINT = (
    "build the optimizer with lrjax.inject_hyperparams in it, e.g. "
    "lrjax.inject_hyperparams(optax.sgd)(learning_rate=lrjax.cosine_decay(...))"
)


class InjectHyperparamsState(NamedTuple):
  """The state of :func:`inject_hyperparams`: the count, the schedules, the
  values in use, and the inner optimizer's state.

  Every leaf is an array. Read the values with :func:`lrjax.hyperparams` and
  swap a schedule with :func:`lrjax.set_hyperparams` rather than by hand.
  """

  # shape=(), dtype=int32: the number of updates so far; update ``t``
  # evaluates every schedule at ``count == t``.
  count: jax.Array
  # name -> an lrjax Schedule (its numbers as float32 / int32 array leaves)
  # or a number (a float32 or int32 array): what each update evaluates.
  schedules: dict[str, Any]
  # name -> shape=(), dtype=float32 (or `hyperparam_dtype`; int32 for an
  # integer number): the values the last update used, before the first
  # update the values it will use.
  hyperparams: dict[str, jax.Array]
  # The inner optimizer's state.
  inner_state: optax.OptState


def inject_hyperparams(
    inner_factory: Callable[..., optax.GradientTransformation],
    *,
    static_args: str | Iterable[str] = (),
    hyperparam_dtype: Any = None,
) -> Callable[..., optax.GradientTransformationExtraArgs]:
  r"""Wraps an optax factory so its schedules live in the optimizer state.

  A drop-in for ``optax.inject_hyperparams``: ``inject_hyperparams(f)(**hps)``
  takes the arguments of the optax factory `f` (``optax.sgd``,
  ``optax.adam``, ...), each numeric one given as an lrjax schedule or a
  number. Update :math:`t` (counted from 0) evaluates every schedule
  :math:`s_k` at the state's count and runs the inner optimizer built with
  those values,

  .. math::
    u_t = f(\ldots, h_k = s_k(t), \ldots).\mathrm{update}(g_t), \qquad
    \text{hyperparams}_t = \{k: s_k(t)\}

  exactly as ``optax.inject_hyperparams`` does with the same schedules
  (optax 0.2.8 records the value the update used, as here). The difference is
  where the schedule lives: optax keeps it in a closure, so each new schedule
  is a new program; here the schedules are leaves of the
  :class:`InjectHyperparamsState`, and the update reads them from the state
  only. So a jitted step (or ``nnx.Optimizer`` under ``nnx.jit``) built once is
  traced once while :func:`set_hyperparams` swaps schedules of one structure;
  states stacked along a leading axis train K configurations under one
  ``jax.vmap``; and a checkpoint of the state holds the schedules.

  ``init`` turns every leaf into an array (float numbers to float32, integers
  to int32), so the state holds only arrays, as ``nnx.Optimizer``, a
  multi-process ``jax.device_put`` and orbax need. The schedules given here
  are what ``init`` puts in the state; to start K states from K schedules of
  one structure, ``jax.vmap`` the construction and ``init`` over
  ``lrjax.stack(schedules)``. Booleans, strings, ``None`` and the arguments
  named in `static_args` are fixed: they are part of the transform, and
  changing them means building a new one (and, under ``nnx.jit``, a new
  graph and a new trace).

  Args:
    inner_factory: a function returning an ``optax.GradientTransformation``,
      such as ``optax.sgd`` or ``optax.adamw``.
    static_args: the name (or names) of `inner_factory`'s arguments to pass
      through as they are, never as values: a callable that is not a
      hyperparameter, such as ``adamw``'s ``mask``.
    hyperparam_dtype: the float dtype of the values passed to the inner
      optimizer; ``None`` for float32 (the schedules' own dtype; optax's
      default casts plain numbers to the parameters' dtype instead).

  Returns:
    A function taking `inner_factory`'s arguments and returning an
    ``optax.GradientTransformationExtraArgs`` whose state is an
    :class:`InjectHyperparamsState`.

  Raises:
    ValueError: if `inner_factory` is not callable, `static_args` names an
      argument `inner_factory` does not take, or `hyperparam_dtype` is not a
      float dtype. The returned function raises it when a hyperparameter is
      a callable that is not an lrjax ``Schedule`` and not in `static_args`
      (a closure cannot be a value in the state), or when values are given
      for `inner_factory`'s ``*args``.

  Example:
    >>> import jax.numpy as jnp, optax, lrjax
    >>> tx = lrjax.inject_hyperparams(optax.sgd)(
    ...     learning_rate=lrjax.cosine_decay(0.1, decay_steps=10),
    ...     momentum=0.9)
    >>> state = tx.init(jnp.zeros(2))
    >>> for _ in range(3):
    ...   updates, state = tx.update(jnp.ones(2), state)
    >>> hp = lrjax.hyperparams(state)
    >>> print(f"{hp['learning_rate']:.4f} {hp['momentum']:.2f}")
    0.0905 0.90
    >>> state = lrjax.set_hyperparams(state, learning_rate=lrjax.constant(0.01))
    >>> updates, state = tx.update(jnp.ones(2), state)
    >>> print(f"{lrjax.hyperparams(state)['learning_rate']:.4f}")
    0.0100

  References:
    ``optax.inject_hyperparams``.
  """
  fn = "inject_hyperparams"
  if not callable(inner_factory):
    raise ValueError(
        f"{fn}: inner_factory must be a callable returning an optax "
        f"GradientTransformation (e.g. optax.sgd), got {inner_factory!r}"
    )
  names = [static_args] if isinstance(static_args, str) else static_args
  names = list(names) if isinstance(names, Iterable) else [names]
  static = set(names) if all(isinstance(a, str) for a in names) else None
  signature = inspect.signature(inner_factory)
  if static is None or not static.issubset(signature.parameters):
    raise ValueError(
        f"{fn}: static_args must name arguments of inner_factory "
        f"{sorted(signature.parameters)}, got {static_args!r}"
    )
  dtype = _check_dtype(fn, hyperparam_dtype)

  def wrapped(*args: Any, **kwargs: Any) -> optax.GradientTransformationExtraArgs:
    bound = signature.bind(*args, **kwargs)
    explicit = set(bound.arguments)  # given by the caller, not defaults
    bound.apply_defaults()
    given: dict[str, Any] = {}
    for name, value in bound.arguments.items():
      kind = signature.parameters[name].kind
      if kind is inspect.Parameter.VAR_KEYWORD:
        given.update(value)
        explicit.update(value)
      elif kind is inspect.Parameter.VAR_POSITIONAL:
        if value:
          raise ValueError(
              f"{fn}: give {inner_factory.__name__}'s hyperparameters by "
              f"keyword; *{name} got {value!r}"
          )
      else:
        given[name] = value
    fixed, scheduled = {}, {}
    for name, value in given.items():
      if name in static or isinstance(value, (bool, np.bool_)):
        fixed[name] = value
      elif isinstance(value, Schedule):
        scheduled[name] = value
      elif callable(value):
        if name not in explicit:  # a callable default, not a hyperparameter
          fixed[name] = value
          continue
        raise ValueError(_callable_error(fn, name, value, static=True))
      elif isinstance(value, _NUMBER_TYPES):
        scheduled[name] = value
      else:
        fixed[name] = value

    def build(values: dict[str, Any]) -> optax.GradientTransformationExtraArgs:
      return optax.with_extra_args_support(inner_factory(**fixed, **values))

    def init_fn(params: optax.Params) -> InjectHyperparamsState:
      schedules = {k: as_leaves(v) for k, v in scheduled.items()}
      count = jnp.zeros([], jnp.int32)
      values = evaluate(schedules, count, dtype)
      return InjectHyperparamsState(
          count=count,
          schedules=schedules,
          hyperparams=values,
          inner_state=build(values).init(params),
      )

    def update_fn(
        updates: optax.Updates,
        state: InjectHyperparamsState,
        params: optax.Params | None = None,
        **extra_args: Any,
    ) -> tuple[optax.Updates, InjectHyperparamsState]:
      values = evaluate(state.schedules, state.count, dtype)
      updates, inner_state = build(values).update(
          updates, state.inner_state, params, **extra_args
      )
      return updates, InjectHyperparamsState(
          count=optax.safe_increment(state.count),
          schedules=state.schedules,
          hyperparams=values,
          inner_state=inner_state,
      )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)

  wrapped.__name__ = getattr(inner_factory, "__name__", "wrapped")
  wrapped.__qualname__ = wrapped.__name__
  wrapped.__doc__ = getattr(inner_factory, "__doc__", None)
  return wrapped


# --- helpers -----------------------------------------------------------------


def _check_dtype(fn: str, dtype: Any) -> Any:
  if dtype is None:
    return None
  try:
    d = jnp.dtype(dtype)
  except TypeError:
    d = None
  if d is None or not jnp.issubdtype(d, jnp.floating):
    raise ValueError(
        f"{fn}: hyperparam_dtype must be None or a float dtype, got {dtype!r}"
    )
  return d


def _callable_error(fn: str, name: str, value: Any, *, static: bool) -> str:
  more = (
      " (or, if it is not a hyperparameter, such as adamw's mask, name it "
      "in static_args)" if static else ""
  )
  return (
      f"{fn}: {name} must be an lrjax schedule or a number, got the callable "
      f"{value!r}: a plain function is a closure, not a value, so it cannot "
      "live in the optimizer state (each new one would be a new program); "
      "build it with an lrjax constructor such as lrjax.cosine_decay or "
      f"lrjax.piecewise_constant{more}"
  )


def check_value(fn: str, name: str, value: Any) -> None:
  """Raises `fn`'s ValueError unless `value` is an lrjax schedule or a number."""
  if isinstance(value, Schedule):
    return
  if isinstance(value, (bool, np.bool_)):
    raise ValueError(
        f"{fn}: {name} must be an lrjax schedule or a number, got the bool "
        f"{value!r} (a flag is fixed when the transform is built)"
    )
  if callable(value):
    raise ValueError(_callable_error(fn, name, value, static=False))
  if not isinstance(value, _NUMBER_TYPES) and not is_variable(value):
    raise ValueError(
        f"{fn}: {name} must be an lrjax schedule or a number, got {value!r}"
    )


def _as_array(x: Any) -> jax.Array:
  """A leaf as an array: floats as float32, integers as int32."""
  a = jnp.asarray(value_of(x))
  if jnp.issubdtype(a.dtype, jnp.floating):
    return a.astype(jnp.float32)
  if jnp.issubdtype(a.dtype, jnp.integer):
    return a.astype(jnp.int32)
  return a


def as_leaves(value: Any) -> Any:
  """A schedule with array leaves, or a number as an array."""
  return jax.tree.map(_as_array, value, is_leaf=is_variable)


def evaluate(
    schedules: dict[str, Any], count: jax.Array, dtype: Any
) -> dict[str, jax.Array]:
  """Each schedule at `count`, each number as it is; floats cast to `dtype`."""
  values = {}
  for name, s in schedules.items():
    v = s(count) if isinstance(s, Schedule) else jnp.asarray(s)
    if dtype is not None and jnp.issubdtype(v.dtype, jnp.floating):
      v = v.astype(dtype)
    values[name] = v
  return values
