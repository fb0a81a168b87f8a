"""Finding an lrjax transform's state anywhere inside an optimizer state, by group.

Optimizer states nest: ``optax.chain`` makes tuples; ``optax.MultiSteps``,
``optax.masked`` and ``optax.inject_hyperparams`` wrap an inner state;
``optax.multi_transform`` / ``optax.partition`` hold one inner state per
label; ``nnx.Optimizer.opt_state`` holds the same tree with every array
wrapped in an ``nnx.OptArray`` variable; and ``nnx.state((model,
optimizer))`` (or ``nnx.split``) turns every ``NamedTuple`` and dataclass in
it into a nested ``nnx.State`` mapping keyed by field name. A state is found
by its type, or, in such a mapping, by its field names.

A *group* is the label under which a state sits in a partition: the key of
``MultiTransformState.inner_states`` nearest to it on its path. No other
mapping key is a group (``nnx.State``'s ``"opt_state"`` or ``"model"`` are
not). :func:`map_states` replaces the states of one type (of one group, or
all), :func:`only_state` and :func:`states_by_group` find them for readers;
:func:`value_of` and :func:`like` unwrap and rewrap the NNX variables.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any, NamedTuple, TypeVar

import jax
import optax

__all__ = [
    "is_variable",
    "like",
    "map_states",
    "only_state",
    "path_keys",
    "states_by_group",
    "states_in",
    "value_of",
]

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


def path_keys(path: tuple[Any, ...]) -> tuple[Any, ...]:
  """A JAX key path as plain keys: dict keys, attribute names, indices.

  The keys ``nnx.State`` uses for the same places.
  """
  return tuple(
      getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))) for k in path
  )


class _Found(NamedTuple):
  group: Any  # the partition label, None outside any partition
  state: Any


def _fields_mapping(x: Any, fields: tuple[str, ...]) -> bool:
  """A NamedTuple with `fields` as an ``nnx.State`` holds it: a mapping keyed
  by the field names; a wrapped optimizer's ``inner_state`` is missing where
  it holds no arrays (``optax.sgd``'s), as ``nnx.State`` keeps only leaves."""
  return (isinstance(x, Mapping) and set(x) <= set(fields)
          and set(fields) - set(x) <= {"inner_state"})


def _as_state(x: Any, state_type: type[_S]) -> _S:
  """`x` (the state or its nnx.State mapping) as a `state_type`."""
  if isinstance(x, state_type):
    return x
  return state_type(**{k: x.get(k) for k in state_type._fields})  # type: ignore[attr-defined]


def _put_back(x: Any, new: Any) -> Any:
  """`new` (a NamedTuple) in the form `x` had: itself, or a mapping like `x`."""
  if not isinstance(x, Mapping):
    return new
  values = new._asdict()
  return type(x)({k: values[k] for k in x})


def _partition(x: Any) -> Mapping[Hashable, Any] | None:
  """The labelled inner states if `x` is a partition's state, else None."""
  if isinstance(x, optax.MultiTransformState):
    return x.inner_states
  if _fields_mapping(x, optax.MultiTransformState._fields):
    return x["inner_states"]
  return None


def _walk(x: Any, state_type: type, f: Callable[[_Found], Any], group: Any) -> Any:
  """`x` with each `state_type` found (outermost first) replaced by `f`."""

  def is_state(n: Any) -> bool:
    return isinstance(n, state_type) or _fields_mapping(n, state_type._fields)

  def visit(n: Any) -> Any:
    if is_state(n):
      return _put_back(n, f(_Found(group, _as_state(n, state_type))))
    inner = _partition(n)
    if inner is None:
      return n
    labelled = type(inner)(
        {k: _walk(v, state_type, f, k) for k, v in inner.items()}
    )
    if isinstance(n, Mapping):
      return type(n)({"inner_states": labelled})
    return n._replace(inner_states=labelled)

  return jax.tree.map(
      visit,
      x,
      is_leaf=lambda n: is_state(n) or _partition(n) is not None or is_variable(n),
  )


def _collect(opt_state: Any, state_type: type) -> list[_Found]:
  found: list[_Found] = []

  def collect(item: _Found) -> Any:
    found.append(item)
    return item.state

  _walk(opt_state, state_type, collect, None)
  return found


def states_in(opt_state: Any, state_type: type[_S], *, group: Any = None
              ) -> list[_S]:
  """Every `state_type` inside `opt_state` (of `group`, if given); may be empty."""
  return [item.state for item in _collect(opt_state, state_type)
          if group is None or item.group == group]


def _find(fn: str, opt_state: Any, state_type: type, *, what: str, hint: str
          ) -> list[_Found]:
  found = _collect(opt_state, state_type)
  if not found:
    raise ValueError(
        f"{fn}: opt_state holds no {what} state (got a "
        f"{type(opt_state).__name__}); {hint}"
    )
  return found


def _groups(found: list[_Found]) -> list[Any]:
  """The distinct groups in order of appearance (None not counted)."""
  out: list[Any] = []
  for item in found:
    if item.group is not None and item.group not in out:
      out.append(item.group)
  return out


def _check_group(fn: str, found: list[_Found], group: Any, what: str) -> None:
  groups = _groups(found)
  if group not in groups:
    there = (f"the groups there are: {groups!r}" if groups else
             "it has no groups (no optax.multi_transform / optax.partition "
             "label above its state): leave group= out")
    raise ValueError(
        f"{fn}: group={group!r} holds no {what} state; {there}"
    )


def map_states(
    fn: str,
    opt_state: Any,
    state_type: type[_S],
    f: Callable[[_S], _S],
    *,
    what: str,
    hint: str,
    group: Any = None,
) -> Any:
  """Applies `f` to every `state_type` inside `opt_state` (of one group).

  A state found is handed to `f` as a `state_type` whole (its fields may be
  NNX variables, or mappings where `opt_state` is an ``nnx.State``) and not
  searched further; the rest of the tree, NNX variables included, is kept
  as it is, and `f`'s result is put back in the found state's form.

  Args:
    fn: the calling function's name, for the error.
    opt_state: any optimizer state (a pytree).
    state_type: the state class to find (a `NamedTuple`).
    f: maps a found state to its replacement.
    what: the transform's name, for the error.
    hint: how to build an optimizer that has such a state, for the error.
    group: only the states under this partition label; None for every
      state.

  Returns:
    `opt_state` with each state (of `group`) replaced by ``f(state)``.

  Raises:
    ValueError: if `opt_state` holds no `state_type`, or none in `group`
      (the message lists the groups there are).
  """
  found = _find(fn, opt_state, state_type, what=what, hint=hint)
  if group is None:
    return _walk(opt_state, state_type, lambda item: f(item.state), None)
  _check_group(fn, found, group, what)
  return _walk(
      opt_state,
      state_type,
      lambda item: f(item.state) if item.group == group else item.state,
      None,
  )


def only_state(
    fn: str,
    opt_state: Any,
    state_type: type[_S],
    *,
    what: str,
    hint: str,
    instead: str,
    group: Any = None,
) -> _S:
  """The one `state_type` inside `opt_state`, or inside its `group`.

  Args:
    fn: the calling function's name, for the error.
    opt_state: any optimizer state (a pytree).
    state_type: the state class to find (a `NamedTuple`).
    what: the transform's name, for the error.
    hint: how to build an optimizer that has such a state, for the error.
    instead: what to do when one group holds several, for the error.
    group: the partition label to look under; None for the only state.

  Returns:
    The state found (its fields may be NNX variables or mappings).

  Raises:
    ValueError: if `opt_state` holds no `state_type`; or several and no
      `group` (the message lists the groups and says to pass ``group=``);
      or `group` holds none (listing the groups there are) or several.
  """
  found = _find(fn, opt_state, state_type, what=what, hint=hint)
  if group is not None:
    _check_group(fn, found, group, what)
    found = [item for item in found if item.group == group]
    where = f" in group {group!r}"
  else:
    where = ""
    groups = _groups(found)
    if len(found) > 1 and len(groups) > 1:
      raise ValueError(
          f"{fn}: opt_state holds {len(found)} {what} states in the groups "
          f"{groups!r}; pass group= to choose one (e.g. group={groups[0]!r})"
      )
  if len(found) > 1:
    raise ValueError(
        f"{fn}: opt_state holds {len(found)} {what} states{where}; {instead}"
    )
  return found[0].state


def states_by_group(
    fn: str, opt_state: Any, state_type: type[_S], *, what: str, hint: str,
    instead: str,
) -> dict[Any, _S]:
  """Every group's one `state_type` (None: a state outside any partition).

  Raises:
    ValueError: if `opt_state` holds no `state_type`, or one group (or the
      part outside any group) holds several.
  """
  out: dict[Any, _S] = {}
  for item in _find(fn, opt_state, state_type, what=what, hint=hint):
    if item.group in out:
      raise ValueError(
          f"{fn}: group {item.group!r} holds several {what} states; {instead}"
      )
    out[item.group] = item.state
  return out
