"""Several schedules: compared one run after another, or swept in one program.

`compare(config, named, workdir)` runs each schedule in turn with
`train.train_and_evaluate`, the runs whose schedules share a structure
sharing one optimizer transform and so one trace, and writes one table.

`sweep(configs, workdir)` trains K LeNets, one per configuration, on the same
batches, with one compiled program for all K: train.py's own `train_step`
run over K stacked (model, optimizer) states, the K schedules living in
those states (`lrjax.inject_hyperparams`: one optimizer transform, each
configuration's schedules swapped in by `lrjax.set_hyperparams`). The step
runs over the K states one of three ways (`over_configs`): ``vmap``
(`jax.vmap`, one batched step), ``unroll`` (K copies of the step in one
program) or ``map`` (a loop over k, as `jax.lax.map`). ``auto`` picks
``map`` on CPU and ``vmap`` elsewhere (see `resolve_mode` for the
measurement behind it). The K models start from the same parameters (the
config's seed), so they differ by their schedule alone.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import pathlib
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import input_pipeline
import reporting
import schedules
import train

# How many times each jitted function was traced in this process: a sweep
# traces (so compiles) its train and eval programs once for all K configurations.
TRACES: collections.Counter[str] = collections.Counter()

MODES = ("auto", "vmap", "unroll", "map")


def resolve_mode(mode: str) -> str:
  """The mode to run: ``auto`` is ``map`` on CPU and ``vmap`` elsewhere.

  Measured on a 2-core CPU with the model the CPU runs (`LeNetPatches`,
  batch 128, K = 4, benchmarks/sweep_throughput.py, two short runs on a
  shared machine): ``map`` ran at 0.67-1.03x the speed of K sequential runs
  (0.90-1.05x for the fastest repeats), ``unroll`` at 0.38-0.42x
  (0.41-0.60x) and ``vmap`` at 0.33-0.46x: the patches model has no
  convolution for XLA to batch, and K straight-line copies of its step, or
  its step batched, move K times the patch matrices through the caches at
  once, where a loop runs one configuration's step at a time. Elsewhere
  ``vmap`` turns K small steps into one larger one.

  Raises:
    ValueError: if `mode` is not one of `MODES`.
  """
  if mode not in MODES:
    raise ValueError(f"sweep mode must be one of {', '.join(MODES)}, got {mode!r}")
  if mode == "auto":
    return "map" if jax.default_backend() == "cpu" else "vmap"
  return mode


# --- runs one after another ---------------------------------------------------------


def compare(config: train.Config, named: dict[str, str | dict[str, Any]],
            workdir: str | pathlib.Path) -> list[dict[str, Any]]:
  """Runs `config` under each schedule and writes one table and one plot.

  Runs whose schedules share a structure share one optimizer transform, so
  one trace of each step (see `train.create_train_state`).

  Args:
    config: the settings shared by all runs.
    named: run name -> schedule (a name in `schedules.SCHEDULES` or an lrjax
      dict); each run works in ``workdir/<run name>``.
    workdir: where ``comparison.csv``, ``comparison.md`` and
      ``comparison.png`` go (and, for TensorBoard, every run's events).

  Returns:
    The table's rows; the table is also printed.
  """
  workdir = pathlib.Path(workdir)
  transforms: dict[Any, optax.GradientTransformation] = {}
  runs, rows = {}, []
  for name, s in named.items():
    if jax.process_index() == 0:  # only process 0 prints (as train_and_evaluate does)
      print(f"== {name} ==", flush=True)
    history = train.train_and_evaluate(dataclasses.replace(config, schedule=s), workdir / name,
                                 transforms=transforms).history
    runs[name] = history
    rows.append({"schedule": name, **reporting.summarize(history),
                 "time_s": sum(r["time"] for r in history)})
  if jax.process_index() == 0:
    print(reporting.write_comparison(workdir, rows, runs))
  return rows


# --- configurations --------------------------------------------------------------


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


class Stacked(NamedTuple):
  """The K plans and whether they use the plateau transform."""

  plans: list[schedules.Plan]
  plateau: bool


def stack_plans(configs: dict[str, train.Config],
                steps_per_epoch: int | None = None) -> Stacked:
  """Checks that the configurations can train together.

  `steps_per_epoch` defaults to that of the full training set.

  Raises:
    ValueError: if `configs` is empty, a config is unusable, they differ in
      anything but the schedule and base rate, only some use the plateau
      transform, the schedules differ in structure, or two configurations
      would train alike (one line each).
  """
  if not configs:
    raise ValueError("sweep: no configurations")
  first = next(iter(configs.values()))
  shared = lambda c: dataclasses.replace(c, schedule="", learning_rate=1.0)
  for label, c in configs.items():
    train.check_config(c)
    if shared(c) != shared(first):
      raise ValueError(f"sweep: {label!r} differs from the first configuration in more than "
                       "its schedule and base rate")
  spe = steps_per_epoch or train.steps_per_epoch(first)
  plans = [schedules.make_plan(c, spe) for c in configs.values()]
  if len({p.plateau is None for p in plans}) > 1:
    raise ValueError("sweep: either every configuration uses the plateau transform or none does")
  labels = list(configs)
  tree0 = jax.tree.structure(plans[0].hyperparams())
  for label, p in zip(labels, plans):
    if jax.tree.structure(p.hyperparams()) != tree0:
      raise ValueError(
          f"sweep: {label!r} is a {type(p.schedule).__name__} that differs in structure from "
          f"{labels[0]!r}, a {type(plans[0].schedule).__name__}; a sweep stacks schedules "
          "of one kind whose numbers differ")
  seen: dict[str, str] = {}
  for label, p in zip(labels, plans):  # e.g. `sqrt`, whose rate is not --lr
    key = json.dumps([p.schedule.to_dict(), p.plateau], sort_keys=True)
    if key in seen:
      raise ValueError(f"sweep: {label!r} trains exactly as {seen[key]!r}")
    seen[key] = label
  return Stacked(plans, plans[0].plateau is not None)


def init_state(config: train.Config, plans: Sequence[schedules.Plan]):
  """K copies of one freshly initialised LeNet, each with its own optimizer state.

  Returns the graph definition of (model, optimizer), one for all K (one
  optimizer transform, built for the first plan; the others' schedules and
  plateau settings are swapped into their states, see
  `train.create_train_state`), and the state with a leading axis K.
  """
  model = train.create_model(config)
  transforms: dict[Any, optax.GradientTransformation] = {}
  splits = [train.create_train_state(model, plan, transforms) for plan in plans]
  return splits[0][0], jax.tree.map(lambda *x: jnp.stack(x), *(s for _, s in splits))


# --- steps over the K configurations ---------------------------------------------


def over_configs(mode: str, fn: Callable, per_config: tuple, shared: tuple = ()):
  """``fn(*per_config[k], *shared)`` for every k, stacked on a leading axis.

  ``vmap`` batches `fn` over k; ``unroll`` traces it K times, straight-line
  code whose compile time grows with K; ``map`` loops over k, compiled once
  whatever K (see `resolve_mode` for their speeds).
  """
  if mode == "vmap":
    return jax.vmap(fn, in_axes=(0,) * len(per_config) + (None,) * len(shared))(*per_config, *shared)
  if mode == "map":
    return jax.lax.map(lambda xs: fn(*xs, *shared), per_config)
  k = len(jax.tree.leaves(per_config)[0])
  outs = [fn(*jax.tree.map(lambda x, i=i: x[i], per_config), *shared) for i in range(k)]
  return jax.tree.map(lambda *x: jnp.stack(x), *outs)


def train_all(graphdef, mode: str, state, batch):
  """`train.train_step` of every configuration on the same batch; metrics have axis K."""
  TRACES["train_all"] += 1
  return over_configs(mode, functools.partial(train.train_step, graphdef), (state,), (batch,))


def eval_all(graphdef, mode: str, state, batch):
  """`train.eval_step` of every configuration on the same batch."""
  TRACES["eval_all"] += 1
  return over_configs(mode, functools.partial(train.eval_step, graphdef), (state,), (batch,))


def observe_all(graphdef, mode: str, state, values):
  """`train.observe_step`: configuration k's metric ``values[k]`` to its own plateau transform."""
  TRACES["observe_all"] += 1
  return over_configs(mode, functools.partial(train.observe_step, graphdef), (state, values))


# --- the loop ------------------------------------------------------------------------


class SweepResult(NamedTuple):
  """What `sweep` returns."""

  state: nnx.State  # of (model, optimizer), every leaf with a leading axis K
  histories: dict[str, list[dict[str, Any]]]  # label -> train.py's per-epoch rows
  rows: list[dict[str, Any]]  # the table


def sweep(configs: dict[str, train.Config], workdir: str | pathlib.Path,
          mode: str = "auto") -> SweepResult:
  """Trains every configuration at once, in one compiled program.

  Args:
    configs: label -> configuration; they may differ only in `schedule` and
      `learning_rate` (see `lr_sweep` and `dict_sweep`).
    workdir: where ``sweep.json``, ``sweep.md`` and ``sweep.png`` go.
    mode: ``"vmap"``, ``"unroll"``, ``"map"`` or ``"auto"`` (see
      `resolve_mode` and `over_configs`).

  Returns:
    The final stacked state, each configuration's history and the table.

  Raises:
    ValueError: if the configurations cannot train together (`stack_plans`).
    input_pipeline.DataError: if the data cannot be found or prepared.
  """
  mode = resolve_mode(mode)
  config = next(iter(configs.values()))
  ds = input_pipeline.load(config.data_dir)
  spe = train.steps_per_epoch(config, len(ds["train_images"]))
  stacked = stack_plans(configs, spe)
  labels, k = list(configs), len(configs)
  workdir = pathlib.Path(workdir)
  train_x, train_y = ds["train_images"][:config.train_subset], ds["train_labels"][:config.train_subset]
  test_x, test_y = ds["test_images"][:config.test_subset], ds["test_labels"][:config.test_subset]

  _, data_sharding, replicated = input_pipeline.make_mesh()
  devices = jax.devices()
  print(f"Sweep of {k} configurations by {mode} on {len(devices)} {devices[0].platform} "
        f"device(s): {', '.join(labels)}", flush=True)

  graphdef, state = init_state(config, stacked.plans)
  state = jax.device_put(state, replicated)
  test_batches = list(input_pipeline.prefetch(input_pipeline.batches(
      test_x, test_y, train.EVAL_BATCH_FACTOR * config.batch_size, np.arange(len(test_x))),
      data_sharding))
  first = input_pipeline.to_device(next(input_pipeline.batches(
      train_x, train_y, config.batch_size, np.arange(len(train_x)))), data_sharding)
  jit = lambda f, n: jax.jit(f, static_argnums=tuple(range(n)), out_shardings=replicated)
  t0 = time.perf_counter()
  step = jit(train_all, 2).lower(graphdef, mode, state, first).compile()
  evaluate = jit(eval_all, 2).lower(graphdef, mode, state, test_batches[0]).compile()
  if stacked.plateau:
    observe = jit(observe_all, 2).lower(graphdef, mode, state, jnp.zeros(k, jnp.float32)).compile()
  compile_s = time.perf_counter() - t0

  histories: dict[str, list[dict[str, Any]]] = {label: [] for label in labels}
  start = time.perf_counter()
  for epoch in range(config.epochs):
    t0 = time.perf_counter()
    order = input_pipeline.epoch_order(config.seed, epoch, len(train_x))
    state, tr = train.train_epoch(step, state, input_pipeline.prefetch(
        input_pipeline.batches(train_x, train_y, config.batch_size, order), data_sharding))
    te = train.evaluate(evaluate, state, test_batches)  # each (K,)
    if stacked.plateau:
      state = observe(state, jnp.asarray(te["correct"] / te["count"], jnp.float32))
    elapsed = time.perf_counter() - t0  # the epoch of all K together
    for i, label in enumerate(labels):
      row = reporting.epoch_row(epoch + 1, {key: v[:, i] for key, v in tr.items()},
                                {key: v[i] for key, v in te.items()}, elapsed)
      histories[label].append(row)
      print(f"[{label}] {reporting.format_row(row)}", flush=True)
  wall_s = time.perf_counter() - start

  rows = [{"configuration": label, **reporting.summarize(h)} for label, h in histories.items()]
  summary = (f"{k} configurations trained together by `{mode}` on {devices[0].platform}: "
             f"{wall_s:.1f} s wall time ({wall_s / k:.1f} s per configuration), "
             f"compile {compile_s:.1f} s")
  table = reporting.results_table(rows, "configuration") + "\n\n" + summary
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / "sweep.md").write_text(table + "\n")
  record = {
      "mode": mode, "k": k, "wall_s": wall_s, "compile_s": compile_s,
      "devices": [str(d) for d in devices], "steps_per_epoch": spe,
      "train_size": len(train_x), "test_size": len(test_x),
      "config": dataclasses.asdict(config) | {"schedule": None, "learning_rate": None},
      "configurations": {
          label: {"schedule": p.schedule.to_dict(), "plateau": p.plateau,
                  "learning_rate": c.learning_rate}
          for (label, c), p in zip(configs.items(), stacked.plans)},
      "rows": rows, "histories": histories,
  }
  (workdir / "sweep.json").write_text(json.dumps(record, indent=1) + "\n")
  reporting.plot(workdir / "sweep.png", histories)
  print(table, flush=True)
  return SweepResult(state, histories, rows)
