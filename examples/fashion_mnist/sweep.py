"""Sweeps: K configurations trained together on the same batches, one table.

`lr_sweep` and `dict_sweep` make the configurations (``--sweep-lr``,
``--sweep``); `sweep` trains them with `train.fit`, the K schedules in the
optimizer states of one transform, the K models from the same parameters (the
config's seed), so they differ by their schedule alone: ``threads`` (K states,
train.py's jitted chunk for each, from K threads) or ``vmap`` (one program
over the K stacked states).
"""

import dataclasses
import json
import pathlib
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
from flax import nnx

import input_pipeline
import reporting
import schedules
import train

MODES = ("auto", "threads", "vmap")


def resolve_mode(mode: str) -> str:
  """The mode to run: ``auto`` is ``threads`` on CPU (K programs fill a CPU's
  idle cores) and ``vmap`` elsewhere (K small steps become one larger one)."""
  if mode not in MODES:
    raise ValueError(f"sweep mode must be one of {', '.join(MODES)}, got {mode!r}")
  if mode == "auto":
    return "threads" if jax.default_backend() == "cpu" else "vmap"
  return mode


def lr_sweep(config: train.Config, rates: Sequence[float]) -> dict[str, train.Config]:
  """The config's named schedule at each base rate, labelled ``"<name> lr=<rate>"``.

  Raises:
    ValueError: if the schedule is an lrjax dict (its numbers are its own) or
      two rates are equal.
  """
  if isinstance(config.schedule, dict):
    raise ValueError("--sweep-lr scales a named --schedule; for lrjax dicts list them with --sweep")
  out = {f"{config.schedule} lr={r:g}": dataclasses.replace(config, learning_rate=r) for r in rates}
  if len(out) != len(rates):
    raise ValueError(f"--sweep-lr: the rates must differ, got {', '.join(map(str, rates))}")
  return out


def dict_sweep(config: train.Config, schedules: Sequence[dict[str, Any]]) -> dict[str, train.Config]:
  """One configuration per lrjax dict, labelled by the numbers that differ.

  A label lists the settings whose values are not the same in every dict
  (``"init_value=0.1"``, nested ones as ``"schedule.init_value=0.1"``).
  """
  flat = [_flatten(d) for d in schedules]
  keys = [k for k in dict.fromkeys(k for f in flat for k in f)
          if k != "type" and len({json.dumps(f.get(k)) for f in flat}) > 1]
  labels = [", ".join(f"{k}={f[k]}" for k in keys if k in f) or f"#{i}" for i, f in enumerate(flat)]
  if len(set(labels)) != len(labels):
    labels = [f"#{i} {label}" for i, label in enumerate(labels)]
  return {label: dataclasses.replace(config, schedule=d) for label, d in zip(labels, schedules)}


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
  out = {}
  for k, v in d.items():
    out.update(_flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
  return out


def check_sweep(configs: dict[str, train.Config], steps_per_epoch: int) -> list[schedules.Plan]:
  """The K plans, once checked that the configurations can train together.

  Raises:
    ValueError: (one line) if they differ in more than schedule and base rate,
      in structure or in using the plateau transform, or two train alike.
  """
  if not configs:
    raise ValueError("sweep: no configurations")
  labels, first = list(configs), next(iter(configs.values()))
  plans = [schedules.make_plan(c, steps_per_epoch) for c in configs.values()]
  shared = lambda c: dataclasses.replace(c, schedule="", learning_rate=1.0)
  structure = lambda p: jax.tree.structure(train.hyperparams(first, p))
  seen: dict[str, str] = {}
  for (label, c), p in zip(configs.items(), plans):
    if shared(c) != shared(first):
      raise ValueError(f"sweep: {label!r} differs from the first configuration in more than "
                       "its schedule and base rate")
    if (p.plateau is None) != (plans[0].plateau is None):
      raise ValueError("sweep: either every configuration uses the plateau transform or none does")
    if structure(p) != structure(plans[0]):
      raise ValueError(
          f"sweep: {label!r} is a {type(p.schedule).__name__} that differs in structure from "
          f"{labels[0]!r}, a {type(plans[0].schedule).__name__}; a sweep stacks schedules "
          "of one kind whose numbers differ (for several kinds, sweep lrjax 'switch' "
          "schedules over the same list with different 'index')")
    key = json.dumps([p.schedule.to_dict(), p.plateau], sort_keys=True)
    if key in seen:  # e.g. `sqrt`, whose rate is not --lr
      raise ValueError(f"sweep: {label!r} trains exactly as {seen[key]!r}")
    seen[key] = label
  return plans


# --- the sweep ---------------------------------------------------------------------


class SweepResult(NamedTuple):
  """What `sweep` returns."""

  state: nnx.State  # of (model, optimizer), every leaf with a leading axis K
  histories: dict[str, list[dict[str, Any]]]  # label -> train.py's per-epoch rows
  rows: list[dict[str, Any]]  # the table


def sweep(configs: dict[str, train.Config], workdir: str | pathlib.Path,
          mode: str = "auto") -> SweepResult:
  """Trains the configurations (label -> config, differing only in `schedule`
  and `learning_rate`) at once with `train.fit`: the same batches, one table
  (``sweep.{json,md,csv,png}`` in `workdir`); `mode` as in `resolve_mode`.

  Raises:
    ValueError: if the configurations cannot train together (`check_sweep`).
    input_pipeline.DataError: if the data cannot be found or prepared.
  """
  mode, workdir = resolve_mode(mode), pathlib.Path(workdir)
  reporting.check_writable(workdir)
  config = next(iter(configs.values()))
  data = train.put_on_device(config, input_pipeline.load(config.data_dir))
  plans = check_sweep(configs, train.steps_per_epoch(config, len(data.train["label"])))
  labels, k = list(configs), len(configs)
  devices = jax.devices()
  print(f"Sweep of {k} configurations by {mode} on {len(devices)} {devices[0].platform} "
        f"device(s): {', '.join(labels)}", flush=True)
  model, transforms = train.create_model(config), {}
  splits = [train.create_train_state(model, c, p, transforms) for c, p in zip(configs.values(), plans)]
  runs = [reporting.Run(None, name=label) for label in labels]
  start = time.perf_counter()
  states = train.fit(config, splits[0][0], [jax.device_put(s, data.replicated) for _, s in splits],
                     runs, data, range(config.epochs), plateau=plans[0].plateau is not None,
                     vmap=mode == "vmap")
  wall_s = time.perf_counter() - start
  rows = reporting.write_table(workdir, dict(zip(labels, runs)), "sweep", "configuration",
                     f"{k} configurations trained together by `{mode}` on {devices[0].platform}: "
                     f"{wall_s:.1f} s wall time ({wall_s / k:.1f} s per configuration)")
  histories = {label: r.history for label, r in zip(labels, runs)}
  reporting.write_text(workdir / "sweep.json", json.dumps({
      "mode": mode, "k": k, "wall_s": wall_s, "devices": [str(d) for d in devices],
      "configurations": {label: dataclasses.asdict(c) for label, c in configs.items()},
      "rows": rows, "histories": histories}, indent=1) + "\n")
  return SweepResult(train.stack(states), histories, rows)
