"""Finding an lrjax transform's state anywhere inside an optimizer state.

Optimizer states nest: ``optax.chain`` makes tuples; ``optax.MultiSteps``,
``optax.masked`` and ``optax.inject_hyperparams`` wrap an inner state; and
``nnx.Optimizer.opt_state`` holds the same tree with every array wrapped in an
``nnx.OptArray`` variable. :func:`map_states` finds the states of one type in
any such tree (eagerly or under ``jit``) and puts what replaces them back in
the same place; :func:`value_of` and :func:`like` unwrap and rewrap the NNX
variables. `observe_plateau`, `plateau_scale`, `set_hyperparams` and
`hyperparams` are all built on them; :func:`only_state` finds the one state
that a reader such as `plateau_scale` needs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import jax

__all__ = ["is_variable", "like", "map_states", "only_state", "value_of"]

_S = TypeVar("_S")


def is_variable(x: Any) -> bool:
  """A Flax NNX variable (e.g. ``nnx.OptArray``): one wrapped array."""
  return callable(getattr(x, "get_value", None)) and callable(
      getattr(x, "replace", None)
  )


def value_of(x: Any) -> Any:
  """The array inside an NNX variable; any other leaf as it is."""
  return x.get_value() if is_variable(x) else x


def like(old: Any, new: Any) -> Any:
  """`new` in `old`'s wrapper: a new NNX variable if `old` is one."""
  return old.replace(new) if is_variable(old) else new


def map_states(
    fn: str,
    opt_state: Any,
    state_type: type[_S],
    f: Callable[[_S], _S],
    *,
    what: str,
    hint: str,
) -> Any:
  """Applies `f` to every `state_type` inside `opt_state`, outermost first.

  A state found is handed to `f` whole (its fields may be NNX variables) and
  not searched further; the rest of the tree, NNX variables included, is
  kept as it is.

  Args:
    fn: the calling function's name, for the error.
    opt_state: any optimizer state (a pytree).
    state_type: the state class to find (a `NamedTuple`).
    f: maps a found state to its replacement.
    what: the transform's name, for the error.
    hint: how to build an optimizer that has such a state, for the error.

  Returns:
    `opt_state` with each state replaced by ``f(state)``.

  Raises:
    ValueError: if `opt_state` holds no `state_type`.
  """
  count = 0

  def visit(x: Any) -> Any:
    nonlocal count
    if isinstance(x, state_type):
      count += 1
      return f(x)
    return x

  out = jax.tree.map(
      visit,
      opt_state,
      is_leaf=lambda x: isinstance(x, state_type) or is_variable(x),
  )
  if count == 0:
    raise ValueError(
        f"{fn}: opt_state holds no {what} state (got a "
        f"{type(opt_state).__name__}); {hint}"
    )
  return out


def only_state(
    fn: str,
    opt_state: Any,
    state_type: type[_S],
    *,
    what: str,
    hint: str,
    instead: str,
) -> _S:
  """The one `state_type` inside `opt_state` (its fields may be NNX variables).

  Args:
    fn: the calling function's name, for the error.
    opt_state: any optimizer state (a pytree).
    state_type: the state class to find (a `NamedTuple`).
    what: the transform's name, for the error.
    hint: how to build an optimizer that has such a state, for the error.
    instead: what to do when there are several, for the error.

  Returns:
    The state found.

  Raises:
    ValueError: if `opt_state` holds no `state_type`, or more than one.
  """
  found: list[_S] = []

  def collect(state: _S) -> _S:
    found.append(state)
    return state

  map_states(fn, opt_state, state_type, collect, what=what, hint=hint)
  if len(found) > 1:
    raise ValueError(
        f"{fn}: opt_state holds {len(found)} {what} states; {instead}"
    )
  return found[0]
