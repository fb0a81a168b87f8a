"""Reading and swapping the schedules inside optimizer states, by group.

`hyperparams` and `hyperparams_by_group` read the values the last update
used; `schedules` reads back the schedules (and numbers) themselves;
`set_hyperparams` swaps them, and `branch` makes K stacked states that differ
only in them, for `jax.vmap`. Each finds its states anywhere in an optimizer
state (see `_opt_state`), one group's with ``group=``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from lrjax._base import Schedule
from lrjax._inject import HINT, InjectHyperparamsState, as_leaves, check_value, evaluate
from lrjax._opt_state import (
    is_variable,
    like,
    map_states,
    only_state,
    path_keys,
    states_by_group,
    value_of,
)

__all__ = [
    "branch",
    "hyperparams",
    "hyperparams_by_group",
    "schedules",
    "set_hyperparams",
]

_WHAT = "inject_hyperparams"
_INSTEAD = "call it on each one's part of the state"


def set_hyperparams(opt_state: Any, *, group: Any = None, **new: Any) -> Any:
  """Replaces schedules or numbers in the `inject_hyperparams` states inside.

  `opt_state` may be the state of :func:`inject_hyperparams` itself or any
  state holding it: ``optax.chain``, ``optax.MultiSteps``, ``optax.masked``,
  ``optax.multi_transform`` / ``optax.partition``, ``nnx.Optimizer``'s
  ``opt_state`` (its ``nnx.OptArray`` leaves are replaced by new variables
  of the same kind) or the ``nnx.State`` of ``nnx.state((model,
  optimizer))``. Each name is replaced in every such state that has it, or
  only in those of `group` (the label of ``optax.multi_transform`` they sit
  under). The next update uses the new schedule at the state's count (the
  count goes on: a schedule swapped in at step 1000 is evaluated at 1000).
  `hyperparams` keeps the values the last update used (before the first
  update, it takes the new values the first will use).

  A replacement of the same structure (same constructor and static
  settings, same leaf shapes) needs no new trace of a jitted step; one of
  another structure (a ``cosine_decay`` for a ``constant``) is allowed and
  costs one new trace. Under ``nnx.jit`` this holds for the optimizer built
  once: a newly built transform is part of a new graph and so a new trace.
  An ``nnx.State`` keeps only a schedule's leaves (its type and static
  settings live in the graph definition), so there the new schedule's leaves
  are written into the old one's places and its structure must be the same.
  A stack of K states (a sweep) is swapped under ``jax.vmap``, with the K new
  schedules stacked by ``lrjax.stack`` (or use :func:`lrjax.branch`).

  Args:
    opt_state: an optimizer state holding at least one
      :class:`InjectHyperparamsState`.
    group: the group whose states to change; None for every state.
    **new: hyperparameter names and their new values, each an lrjax
      ``Schedule`` or a number.

  Returns:
    `opt_state` with the values replaced (`opt_state` itself is untouched).

  Raises:
    ValueError: if `opt_state` holds no `inject_hyperparams` state (or none
      in `group`: the message lists the groups there are), a name is not a
      hyperparameter held in any of them (booleans, strings and static
      arguments are fixed when the transform is built), a value is not an
      lrjax ``Schedule`` or a number, a schedule for an ``nnx.State`` differs
      in structure from the one it replaces, or the state is a stack of
      states (outside ``jax.vmap``).

  Example:
    >>> import jax.numpy as jnp, optax, lrjax
    >>> tx = optax.chain(optax.clip_by_global_norm(1.0),
    ...                  lrjax.inject_hyperparams(optax.sgd)(learning_rate=0.1))
    >>> state = tx.init(jnp.zeros(2))
    >>> state = lrjax.set_hyperparams(
    ...     state, learning_rate=lrjax.exponential_decay(
    ...         0.2, decay_steps=1, decay_rate=0.5))
    >>> print(f"{lrjax.hyperparams(state)['learning_rate']:.2f}")
    0.20
  """
  return _swap("set_hyperparams", opt_state, group, new)


def hyperparams(opt_state: Any, *, group: Any = None) -> dict[str, jax.Array]:
  """The hyperparameter values the last update used, from any nested state.

  Before the first update, the values the first will use. For logging: with
  ``optax.chain(lrjax.inject_hyperparams(optax.sgd)(learning_rate=s),
  lrjax.reduce_on_plateau())`` the rate applied is ``hyperparams(state)
  ["learning_rate"] * lrjax.plateau_scale(state)``. Accepts the same nested
  states as :func:`set_hyperparams`, eagerly or under ``jit``.

  Args:
    opt_state: an optimizer state holding one
      :class:`InjectHyperparamsState`, or one per group.
    group: the group to read (the ``optax.multi_transform`` label); needed
      when `opt_state` holds several groups.

  Returns:
    A dict from each hyperparameter name (numbers and schedules alike) to its
    value, a `jax.Array`.

  Raises:
    ValueError: if `opt_state` holds no `inject_hyperparams` state; several
      and no `group` (the message lists the groups found); or `group` holds
      none (listing the groups there are) or several.

  Example:
    >>> import jax.numpy as jnp, optax, lrjax
    >>> tx = lrjax.inject_hyperparams(optax.adam)(
    ...     learning_rate=1e-3, b1=lrjax.one_cycle_momentum(total_steps=100))
    >>> hp = lrjax.hyperparams(tx.init(jnp.zeros(2)))
    >>> print(f"{hp['learning_rate']:.0e} {hp['b1']:.2f} {hp['b2']:.3f}")
    1e-03 0.95 0.999
  """
  state = _only("hyperparams", opt_state, group)
  return _values(state)


def hyperparams_by_group(opt_state: Any) -> dict[Any, dict[str, jax.Array]]:
  """Every group's hyperparameter values at once, for logging.

  Args:
    opt_state: an optimizer state holding :class:`InjectHyperparamsState`
      states, at most one per group.

  Returns:
    A dict from each group (the ``optax.multi_transform`` label; ``None`` for
    a state outside any partition) to what :func:`hyperparams` returns for it.

  Raises:
    ValueError: if `opt_state` holds no `inject_hyperparams` state, or a
      group holds several.

  Example:
    >>> import jax.numpy as jnp, optax, lrjax
    >>> tx = optax.multi_transform(
    ...     {"body": lrjax.inject_hyperparams(optax.sgd)(learning_rate=0.01),
    ...      "head": lrjax.inject_hyperparams(optax.sgd)(learning_rate=0.1)},
    ...     {"w": "body", "b": "head"})
    >>> state = tx.init({"w": jnp.zeros(2), "b": jnp.zeros(1)})
    >>> for g, hp in lrjax.hyperparams_by_group(state).items():
    ...   print(f"{g}: {hp['learning_rate']:.2f}")
    body: 0.01
    head: 0.10
  """
  found = states_by_group("hyperparams_by_group", opt_state, InjectHyperparamsState,
                          what=_WHAT, hint=HINT, instead=_INSTEAD)
  return {g: _values(state) for g, state in found.items()}


def schedules(opt_state: Any, *, group: Any = None) -> dict[str, Any]:
  """The schedules (and numbers) an `inject_hyperparams` state holds.

  What :func:`set_hyperparams` put there, by hyperparameter name, with plain
  array leaves: ``set_hyperparams(state, learning_rate=schedules(state)
  ["learning_rate"])`` changes nothing. So a restored run is extended or
  cooled down from the schedule it has, e.g. ``set_hyperparams(state,
  learning_rate=lrjax.cooldown(schedules(state)["learning_rate"],
  start=step, decay_steps=n))``.

  Args:
    opt_state: an optimizer state holding one
      :class:`InjectHyperparamsState`, or one per group (e.g.
      ``nnx.Optimizer``'s ``opt_state``).
    group: the group to read; needed when `opt_state` holds several.

  Returns:
    A dict from each hyperparameter name to its lrjax ``Schedule`` or its
    number (a `jax.Array`).

  Raises:
    ValueError: as :func:`hyperparams`; and if `opt_state` is an
      ``nnx.State`` (from ``nnx.state`` or ``nnx.split``), which keeps a
      schedule's leaves but not its type: read ``optimizer.opt_state``
      instead.

  Example:
    >>> import jax.numpy as jnp, optax, lrjax
    >>> tx = lrjax.inject_hyperparams(optax.sgd)(
    ...     learning_rate=lrjax.cosine_decay(0.1, decay_steps=100), momentum=0.9)
    >>> held = lrjax.schedules(tx.init(jnp.zeros(2)))
    >>> print(f"{held['learning_rate'](50):.3f} {held['momentum']:.1f}")
    0.050 0.9
  """
  fn = "schedules"
  state = _only(fn, opt_state, group)
  out = {}
  for name, value in state.schedules.items():
    if isinstance(value, Mapping):
      raise ValueError(
          f"{fn}: opt_state is an nnx.State (from nnx.state or nnx.split), which "
          f"keeps {name}'s leaves but not its schedule type; call schedules on "
          "optimizer.opt_state (or on nnx.merge(graphdef, state)) instead"
      )
    out[name] = jax.tree.map(value_of, value, is_leaf=is_variable)
  return out


def branch(opt_state: Any, *, group: Any = None, **stacked: Any) -> Any:
  """K states from one, differing only in the named schedules, for `jax.vmap`.

  Every leaf of `opt_state` is stacked K times along a new leading axis, and
  branch ``k`` holds the ``k``-th of each named schedule in place of the
  state's own: ``jax.vmap(step)(branched)`` trains K branches, branch ``k``
  exactly as the run whose state had ``set_hyperparams(opt_state,
  group=group, name=value_k)`` alone. Give the K schedules of a name as
  ``lrjax.stack([...])`` (schedules of one structure) or as an array of K
  numbers. `opt_state` may be any tree holding the states (an optax state,
  ``nnx.Optimizer``'s ``opt_state``, the ``nnx.State`` of a model and its
  optimizer); stack the rest of what the step takes (the parameters) the
  same way, e.g. with ``jax.tree.map``, or pass the whole tree.

  Args:
    opt_state: a tree holding at least one :class:`InjectHyperparamsState`.
    group: the group whose states to change; None for every state.
    **stacked: hyperparameter names and their K values: a stacked lrjax
      ``Schedule`` (every leaf with a leading axis of K) or an array of K
      numbers.

  Returns:
    `opt_state` with every leaf of shape ``(K, ...)``.

  Raises:
    ValueError: if no name is given; a value is not a stacked schedule or an
      array of K numbers (a single schedule or number, a plain function);
      the names hold different K; or as :func:`set_hyperparams` (a name the
      state does not hold, an unknown group).

  Example:
    >>> import jax, jax.numpy as jnp, optax, lrjax
    >>> tx = lrjax.inject_hyperparams(optax.sgd)(learning_rate=lrjax.constant(0.1))
    >>> state = tx.init(jnp.zeros(2))
    >>> cooldowns = lrjax.stack([lrjax.linear(0.1, end_value=0.0, steps=n)
    ...                          for n in (10, 20)])
    >>> states = lrjax.branch(state, learning_rate=cooldowns)
    >>> _, states = jax.vmap(tx.update, in_axes=(None, 0))(jnp.ones(2), states)
    >>> _, states = jax.vmap(tx.update, in_axes=(None, 0))(jnp.ones(2), states)
    >>> print(jax.vmap(lambda s: lrjax.hyperparams(s)["learning_rate"])(states))
    [0.09  0.095]
  """
  fn = "branch"
  if not stacked:
    raise ValueError(
        f"{fn}: name at least one hyperparameter and its K values, e.g. "
        "learning_rate=lrjax.stack([...])"
    )
  sizes = {}
  for name, value in stacked.items():
    check_value(fn, name, value)
    leaves = [value_of(x) for x in jax.tree.leaves(value, is_leaf=is_variable)]
    heads = {jnp.shape(x)[0] if jnp.ndim(x) else None for x in leaves}
    if not leaves or None in heads or len(heads) != 1:
      raise ValueError(
          f"{fn}: {name} must be K schedules stacked by lrjax.stack([...]) or an "
          f"array of K numbers (a leading axis of K on every leaf), got {value!r}"
      )
    sizes[name] = heads.pop()
  if len(set(sizes.values())) != 1:
    raise ValueError(
        f"{fn}: every hyperparameter must hold the same number of branches K, "
        f"got {sizes}"
    )
  return jax.vmap(lambda values: _swap(fn, opt_state, group, values))(stacked)


# --- helpers -------------------------------------------------------------------


def _only(fn: str, opt_state: Any, group: Any) -> InjectHyperparamsState:
  return only_state(fn, opt_state, InjectHyperparamsState, what=_WHAT, hint=HINT,
                    instead=_INSTEAD, group=group)


def _values(state: InjectHyperparamsState) -> dict[str, jax.Array]:
  return {k: jnp.asarray(value_of(v)) for k, v in state.hyperparams.items()}


def _swap(fn: str, opt_state: Any, group: Any, new: dict[str, Any]) -> Any:
  """`set_hyperparams`'s work, with `fn` naming the caller in errors."""
  for name, value in new.items():
    check_value(fn, name, value)
  found: set[str] = set()
  known: set[str] = set()

  def replace(state: InjectHyperparamsState) -> InjectHyperparamsState:
    known.update(state.schedules)
    shape = jnp.shape(value_of(state.count))
    if shape:
      raise ValueError(
          f"{fn}: opt_state is a stack of states (its count has shape {shape}); "
          "swap their schedules under jax.vmap, e.g. jax.vmap(lambda s, v: "
          "lrjax.set_hyperparams(s, learning_rate=v))(opt_state, lrjax.stack([...]))"
      )
    held, records = dict(state.schedules), dict(state.hyperparams)
    first = value_of(state.count) == 0
    for name, value in new.items():
      if name not in held:
        continue
      found.add(name)
      leaves = as_leaves(value)
      held[name] = _put(fn, name, held[name], leaves)
      old = records[name]
      start = evaluate({name: leaves}, jnp.zeros([], jnp.int32), None)
      rec = jnp.where(first, start[name], value_of(old)).astype(value_of(old).dtype)
      records[name] = like(old, rec)
    return state._replace(schedules=_same_kind(state.schedules, held),
                          hyperparams=_same_kind(state.hyperparams, records))

  out = map_states(fn, opt_state, InjectHyperparamsState, replace, what=_WHAT,
                   hint=HINT, group=group)
  unknown = sorted(set(new) - found)
  if unknown:
    where = "" if group is None else f" of group {group!r}"
    raise ValueError(
        f"{fn}: {unknown[0]} is not a hyperparameter held in the state{where} (it "
        f"holds {sorted(known)}; booleans, strings and static_args are fixed "
        f"when the transform is built), got {unknown[0]}={new[unknown[0]]!r}"
    )
  return out


def _same_kind(old: Any, new: dict[str, Any]) -> Any:
  """`new` as the kind of mapping `old` is (a dict, or an ``nnx.State``)."""
  return new if type(old) is dict else type(old)(new)


def _put(fn: str, name: str, old: Any, new: Any) -> Any:
  """`new` in `old`'s place: in its NNX variables, in its nnx.State form."""
  if isinstance(old, Mapping):
    return _fill(fn, name, old, _by_key(new))
  old_leaves, old_def = jax.tree.flatten(old, is_leaf=is_variable)
  wrappers = [x for x in old_leaves if is_variable(x)]
  if not wrappers:
    return new
  new_leaves, new_def = jax.tree.flatten(new)
  if new_def == old_def:
    leaves = [like(o, n) for o, n in zip(old_leaves, new_leaves)]
  else:  # another structure: new variables of the same kind
    leaves = [wrappers[0].replace(n) for n in new_leaves]
  return jax.tree.unflatten(new_def, leaves)


def _by_key(tree: Any) -> Any:
  """`tree`'s leaves in nested dicts keyed as ``nnx.State`` keys them."""
  if isinstance(tree, jax.Array) or not jax.tree.leaves(tree):
    return tree
  out: dict[Any, Any] = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    keys = path_keys(path)
    node = out
    for key in keys[:-1]:
      node = node.setdefault(key, {})
    node[keys[-1]] = leaf
  return out


def _fill(fn: str, name: str, old: Any, new: Any) -> Any:
  """`old` (an nnx.State of a schedule) with the leaves of `new`, by key."""
  if isinstance(old, Mapping) != isinstance(new, Mapping) or (
      isinstance(old, Mapping) and set(old) != set(new)):
    raise ValueError(
        f"{fn}: {name} must have the structure of the schedule it replaces in "
        "an nnx.State (which keeps only its leaves); swap it in "
        "optimizer.opt_state instead to change its structure"
    )
  if not isinstance(old, Mapping):
    return like(old, new)
  return type(old)({k: _fill(fn, name, old[k], new[k]) for k in old})
