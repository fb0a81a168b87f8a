"""Flax serialization of schedules, registered when ``flax.serialization`` loads.

``flax.serialization.to_state_dict`` / ``from_state_dict`` (and so
``to_bytes`` / ``from_bytes`` and ``flax.training`` checkpoints) know only the
types registered with them. Every lrjax schedule class is registered here: its
state dict holds its numeric fields (the pytree leaves, nested schedules as
nested dicts); its static settings come from the target, as a pytree's
structure does. lrjax does not import or depend on flax: :func:`install`
registers at once if ``flax.serialization`` is already imported and otherwise
when it is (a post-import hook), so the import order does not matter.
"""

from __future__ import annotations

import dataclasses
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType
from typing import Any

from lrjax._base import Schedule

__all__ = ["install"]

_MODULE = "flax.serialization"
_registered: set[type] = set()


def _schedule_classes() -> list[type]:
  """Every dataclass subclass of `Schedule`, found recursively."""
  out, todo = [], list(Schedule.__subclasses__())
  while todo:
    cls = todo.pop()
    todo.extend(cls.__subclasses__())
    if dataclasses.is_dataclass(cls) and cls not in out:
      out.append(cls)
  return out


def _leaf_fields(schedule: Any) -> list[str]:
  return [f.name for f in dataclasses.fields(schedule)
          if not f.metadata.get("static", False)]


def _register(serialization: ModuleType) -> None:
  """Registers every schedule class not yet registered with `serialization`."""

  def to_state(schedule: Any) -> dict[str, Any]:
    return {name: serialization.to_state_dict(getattr(schedule, name))
            for name in _leaf_fields(schedule)}

  def from_state(target: Any, state: dict[str, Any]) -> Any:
    names = _leaf_fields(target)
    if set(state) != set(names):
      raise ValueError(
          f"from_state_dict: the state of {type(target).__name__} holds "
          f"{sorted(state)}, the target's fields are {sorted(names)}"
      )
    return dataclasses.replace(target, **{
        name: serialization.from_state_dict(getattr(target, name), state[name], name=name)
        for name in names})

  for cls in _schedule_classes():
    if cls not in _registered:
      serialization.register_serialization_state(cls, to_state, from_state)
      _registered.add(cls)


class _Loader(importlib.abc.Loader):
  """Runs the real loader, then registers the schedules."""

  def __init__(self, loader: importlib.abc.Loader):
    self._loader = loader

  def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
    return self._loader.create_module(spec)

  def exec_module(self, module: ModuleType) -> None:
    self._loader.exec_module(module)
    _register(module)
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _Finder)]

  def __getattr__(self, name: str) -> Any:  # get_source, get_filename, ...
    return getattr(self._loader, name)


class _Finder(importlib.abc.MetaPathFinder):
  """Finds ``flax.serialization`` through the other finders, with `_Loader`."""

  def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
    if fullname != _MODULE:
      return None
    for finder in sys.meta_path:
      if finder is self or not hasattr(finder, "find_spec"):
        continue
      spec = finder.find_spec(fullname, path, target)
      if spec is not None and spec.loader is not None:
        spec.loader = _Loader(spec.loader)
        return spec
    return None


def install() -> None:
  """Registers the schedules with flax now, or when ``flax.serialization`` loads."""
  module = sys.modules.get(_MODULE)
  if module is not None:
    _register(module)
  elif not any(isinstance(f, _Finder) for f in sys.meta_path):
    sys.meta_path.insert(0, _Finder())
