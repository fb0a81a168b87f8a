"""Sweeps: K configurations trained together on the same batches, one table.

`lr_sweep` and `dict_sweep` make the configurations (``--sweep-lr``,
``--sweep``); `sweep` trains them with train.py's loop (`train.fit`), the K
schedules living in the optimizer states (one transform; each
configuration's schedules swapped in by `lrjax.set_hyperparams`). The K
models start from the same parameters (the config's seed), so they differ
by their schedule alone. `programs` runs the K configurations one of four
ways: ``threads`` (K states, train.py's jitted chunk run for all K at the
same time from a thread pool: `train.programs_in_threads`), ``vmap``
(`jax.vmap` over K stacked states: one batched program), ``unroll`` (K
copies of the chunk in one program) or ``map`` (a loop over k inside one
program). ``auto`` picks ``threads`` on CPU and ``vmap`` elsewhere.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import pathlib
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

import input_pipeline
import reporting
import schedules
import train

MODES = ("auto", "threads", "vmap", "unroll", "map")


def resolve_mode(mode: str) -> str:
  """The mode to run: ``auto`` is ``threads`` on CPU (K programs from K
  threads fill a CPU's idle cores; benchmarks/sweep_throughput.py) and
  ``vmap`` elsewhere (K small steps become one larger one).

  Raises:
    ValueError: if `mode` is not one of `MODES`.
  """
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
    if isinstance(v, dict):
      out.update(_flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def check_sweep(configs: dict[str, train.Config], steps_per_epoch: int) -> list[schedules.Plan]:
  """The K plans, once checked that the configurations can train together.

  Raises:
    ValueError: if `configs` is empty, they differ in anything but the
      schedule and base rate, only some use the plateau transform, the
      schedules differ in structure, or two configurations would train
      alike (one line each).
  """
  if not configs:
    raise ValueError("sweep: no configurations")
  first = next(iter(configs.values()))
  shared = lambda c: dataclasses.replace(c, schedule="", learning_rate=1.0)
  for label, c in configs.items():
    if shared(c) != shared(first):
      raise ValueError(f"sweep: {label!r} differs from the first configuration in more than "
                       "its schedule and base rate")
  plans = [schedules.make_plan(c, steps_per_epoch) for c in configs.values()]
  if len({p.plateau is None for p in plans}) > 1:
    raise ValueError("sweep: either every configuration uses the plateau transform or none does")
  labels = list(configs)
  tree0 = jax.tree.structure(train.hyperparams(first, plans[0]))
  seen: dict[str, str] = {}
  for label, p in zip(labels, plans):
    if jax.tree.structure(train.hyperparams(first, p)) != tree0:
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


# --- one program over the K configurations --------------------------------------------


def over_configs(mode: str, fn: Callable, per_config: tuple, shared: tuple = ()):
  """``fn(*per_config[k], *shared)`` for every k, stacked on a leading axis,
  inside one program: ``vmap`` batches `fn` over k, ``unroll`` traces it K
  times, ``map`` loops over k (compiled once whatever K)."""
  if mode == "vmap":
    return jax.vmap(fn, in_axes=(0,) * len(per_config) + (None,) * len(shared))(*per_config, *shared)
  if mode == "map":
    return jax.lax.map(lambda xs: fn(*xs, *shared), per_config)
  k = len(jax.tree.leaves(per_config)[0])
  return train.stack([fn(*jax.tree.map(lambda x, i=i: x[i], per_config), *shared)
                      for i in range(k)])


def programs_in_one(mode: str, graphdef, states: list, data: train.OnDevice,
                    plateau: bool) -> train.Programs:
  """`train.Programs` of one program over the K stacked `states` (see `over_configs`)."""
  batch = NamedSharding(data.mesh, P("batch"))
  jit = lambda f: jax.jit(f, out_shardings=data.replicated)
  images, labels = data.train["image"], data.train["label"]
  steps = lambda s, i, w: train.train_steps(graphdef, s, images, labels, i, w, sharding=batch)
  evaluate = lambda s: train.eval_steps(graphdef, s, *data.test_args(), sharding=batch)
  observe = lambda s, v: train.observe_step(graphdef, s, v)
  train_k = jit(lambda s, i, w: over_configs(mode, steps, (s, i, w)))

  def run_train(state, idx, weight):
    xs = input_pipeline.to_device({"idx": idx, "weight": weight}, data.replicated)
    return train_k(state, xs["idx"], xs["weight"])

  return train.Programs(run_train, jit(lambda s: over_configs(mode, evaluate, (s,))),
                        jit(lambda s, v: over_configs(mode, observe, (s, v))) if plateau else None,
                        lambda s, k: jax.tree.map(lambda x: x[k], s), train.stack(states))


def programs(mode: str, graphdef, states: list, data: train.OnDevice, plateau: bool,
             pool: concurrent.futures.Executor) -> train.Programs:
  """The K runs' `train.Programs` for `mode` (`resolve_mode`)."""
  if mode == "threads":
    return train.programs_in_threads(graphdef, states, data, plateau, pool)
  return programs_in_one(mode, graphdef, states, data, plateau)


def stacked(programs_: train.Programs, k: int):
  """The K runs' state of `programs_`, stacked on a leading axis."""
  return train.stack([programs_.member(programs_.state, i) for i in range(k)])


# --- the sweep ---------------------------------------------------------------------


class SweepResult(NamedTuple):
  """What `sweep` returns."""

  state: nnx.State  # of (model, optimizer), every leaf with a leading axis K
  histories: dict[str, list[dict[str, Any]]]  # label -> train.py's per-epoch rows
  rows: list[dict[str, Any]]  # the table


def sweep(configs: dict[str, train.Config], workdir: str | pathlib.Path,
          mode: str = "auto") -> SweepResult:
  """Trains every configuration at once with `train.fit`: the same batches, one table.

  Args:
    configs: label -> configuration; they may differ only in `schedule` and
      `learning_rate` (see `lr_sweep` and `dict_sweep`).
    workdir: where ``sweep.json``, ``sweep.md`` and ``sweep.png`` go.
    mode: ``"threads"``, ``"vmap"``, ``"unroll"``, ``"map"`` or ``"auto"``
      (see `resolve_mode`).

  Returns:
    The final stacked state, each configuration's history and the table.

  Raises:
    ValueError: if the configurations cannot train together (`check_sweep`).
    input_pipeline.DataError: if the data cannot be found or prepared.
  """
  mode = resolve_mode(mode)
  workdir = pathlib.Path(workdir)
  reporting.check_writable(workdir)
  config = next(iter(configs.values()))
  ds = input_pipeline.load(config.data_dir)
  plans = check_sweep(configs, train.steps_per_epoch(config, len(ds["train_images"])))
  labels, k = list(configs), len(configs)
  devices = jax.devices()
  print(f"Sweep of {k} configurations by {mode} on {len(devices)} {devices[0].platform} "
        f"device(s): {', '.join(labels)}", flush=True)
  model, transforms = train.create_model(config), {}
  splits = [train.create_train_state(model, c, p, transforms) for c, p in zip(configs.values(), plans)]
  data = train.put_on_device(config, ds)
  states = [jax.device_put(s, data.replicated) for _, s in splits]
  runs = [reporting.Run(None, name=label) for label in labels]
  with concurrent.futures.ThreadPoolExecutor(k) as pool:
    start = time.perf_counter()
    progs = programs(mode, splits[0][0], states, data, plans[0].plateau is not None, pool)
    progs = progs._replace(state=train.fit(config, progs, runs, data, range(config.epochs)))
    wall_s = time.perf_counter() - start
  histories = {label: r.history for label, r in zip(labels, runs)}
  rows = [{"configuration": label, **reporting.summarize(r.history, r.diverged)}
          for label, r in zip(labels, runs)]
  summary = (f"{k} configurations trained together by `{mode}` on {devices[0].platform}: "
             f"{wall_s:.1f} s wall time ({wall_s / k:.1f} s per configuration)")
  table = reporting.write_comparison(workdir, rows, histories, "sweep", "configuration")
  reporting.write_text(workdir / "sweep.md", f"{table}\n\n{summary}\n")
  reporting.write_text(workdir / "sweep.json", json.dumps({
      "mode": mode, "k": k, "wall_s": wall_s, "devices": [str(d) for d in devices],
      "config": dataclasses.asdict(config) | {"schedule": None, "learning_rate": None},
      "configurations": {label: {"schedule": p.schedule.to_dict(), "plateau": p.plateau,
                                 "learning_rate": c.learning_rate}
                         for (label, c), p in zip(configs.items(), plans)},
      "rows": rows, "histories": histories}, indent=1) + "\n")
  print(f"{table}\n\n{summary}", flush=True)
  return SweepResult(stacked(progs, k), histories, rows)
