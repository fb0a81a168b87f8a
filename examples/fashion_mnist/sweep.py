"""Sweeps of K schedule settings in one compiled program, and the range test.

`sweep(configs, workdir)` trains K LeNets, one per configuration, on the same
batches, with one compiled train step for all K: the K schedules are stacked
by `lrjax.stack`, the K models and optimizer states along a leading axis, and
the step runs over that axis one of three ways (`over_configs`): ``vmap``
(`jax.vmap`, one batched step), ``unroll`` (K copies of the single-model step
in one program) or ``map`` (a loop over k, as `jax.lax.map`). ``auto`` picks
``unroll`` on CPU, where XLA's convolutions do not batch (a vmapped LeNet step
is slower than K separate ones) and a loop body runs slower than straight-line
code, and ``vmap`` elsewhere; benchmarks/sweep_throughput.py measures all
three. The K models start from the same parameters (the config's seed), so
they differ by their schedule alone.

`find_lr(config, workdir)` runs `lrjax.lr_range_test` on the LeNet.

Only the building blocks of train.py are used (the model, loss, optimizer,
plans, batches and plot); the steps here are this module's own.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import pathlib
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

import lrjax

import data as data_lib
import train

# How many times each jitted function was traced in this process: a sweep
# traces (so compiles) its train and eval steps once for all K configurations.
TRACES: collections.Counter[str] = collections.Counter()

MODES = ("auto", "vmap", "unroll", "map")


def resolve_mode(mode: str) -> str:
  """The mode to run: ``auto`` is ``unroll`` on CPU and ``vmap`` elsewhere.

  Raises:
    ValueError: if `mode` is not one of `MODES`.
  """
  if mode not in MODES:
    raise ValueError(f"sweep mode must be one of {', '.join(MODES)}, got {mode!r}")
  if mode == "auto":
    return "unroll" if jax.default_backend() == "cpu" else "vmap"
  return mode


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
  """The K plans, their schedules stacked, and whether they use the plateau."""

  plans: list[train.Plan]
  schedule: lrjax.Schedule  # leaves with a leading axis K
  plateau: bool


def steps_per_epoch(config: train.Config) -> int:
  """Optimizer steps per epoch: the last, partial batch counts (train.py's rule)."""
  train_size = min(config.train_subset or data_lib.TRAIN_SIZE, data_lib.TRAIN_SIZE)
  return -(-train_size // config.batch_size)


def stack_plans(configs: dict[str, train.Config]) -> Stacked:
  """Checks that the configurations can train together, and stacks their schedules.

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
  plans = [train.make_plan(c, steps_per_epoch(first)) for c in configs.values()]
  if len({p.plateau is None for p in plans}) > 1:
    raise ValueError("sweep: either every configuration uses the plateau transform or none does")
  labels = list(configs)
  tree0 = jax.tree.structure(plans[0].schedule)
  for label, p in zip(labels, plans):
    if jax.tree.structure(p.schedule) != tree0:
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
  return Stacked(plans, lrjax.stack([p.schedule for p in plans]), plans[0].plateau is not None)


def init_state(seed: int, plans: Sequence[train.Plan]) -> tuple[nnx.GraphDef, nnx.State]:
  """K copies of one freshly initialised LeNet, each with its own optimizer state.

  Returns the graph definition of (model, optimizer) and the state with a
  leading axis K. Every model starts from the parameters of ``LeNet(seed)``.
  The first plan's graph definition serves all K: the plateau transform
  reads its settings and counters from its state (stacked here, one per
  configuration), never from the Python closure the graph definition holds.
  """
  model = train.LeNet(rngs=nnx.Rngs(seed))
  splits = [nnx.split((model, train.make_optimizer(model, plan))) for plan in plans]
  return splits[0][0], jax.tree.map(lambda *x: jnp.stack(x), *(s for _, s in splits))


# --- steps -------------------------------------------------------------------------
# One configuration's step, then the same over the leading axis K.


def _train_one(graphdef, plateau: bool, state, schedule: lrjax.Schedule, batch):
  """One SGD update of one configuration (train.py's step math)."""
  model, opt = nnx.merge(graphdef, state)
  lr = schedule(opt.step[...])
  used = lr * lrjax.plateau_scale(opt.opt_state) if plateau else lr
  grads, stats = nnx.grad(train._loss, has_aux=True)(model, batch)  # pylint: disable=protected-access
  opt.update(model, grads, learning_rate=lr)
  return nnx.state((model, opt)), dict(stats, lr=used)


def _eval_one(graphdef, state, batch):
  model, _ = nnx.merge(graphdef, state)
  return train._loss(model, batch)[1]  # pylint: disable=protected-access


def _observe_one(graphdef, state, value):
  model, opt = nnx.merge(graphdef, state)
  opt.opt_state = lrjax.observe_plateau(opt.opt_state, value)
  return nnx.state((model, opt))


def over_configs(mode: str, fn: Callable, per_config: tuple, shared: tuple = ()):
  """``fn(*per_config[k], *shared)`` for every k, stacked on a leading axis.

  ``vmap`` batches `fn` over k; ``unroll`` traces it K times, straight-line
  code whose compile time grows with K; ``map`` loops over k (compiled once,
  but on XLA:CPU a LeNet step in a loop body runs at less than half its
  speed).
  """
  if mode == "vmap":
    return jax.vmap(fn, in_axes=(0,) * len(per_config) + (None,) * len(shared))(*per_config, *shared)
  if mode == "map":
    return jax.lax.map(lambda xs: fn(*xs, *shared), per_config)
  k = len(jax.tree.leaves(per_config)[0])
  outs = [fn(*jax.tree.map(lambda x, i=i: x[i], per_config), *shared) for i in range(k)]
  return jax.tree.map(lambda *x: jnp.stack(x), *outs)


def train_all(graphdef, plateau: bool, mode: str, state, schedule, batch):
  """One update of every configuration on the same batch; metrics have axis K."""
  TRACES["train_all"] += 1
  return over_configs(mode, lambda s, sc, b: _train_one(graphdef, plateau, s, sc, b),
                      (state, schedule), (batch,))


def eval_all(graphdef, mode: str, state, batch):
  """Summed loss, correct and example counts of every configuration on a batch."""
  TRACES["eval_all"] += 1
  return over_configs(mode, lambda s, b: _eval_one(graphdef, s, b), (state,), (batch,))


def observe_all(graphdef, mode: str, state, values):
  """Feeds configuration k's metric ``values[k]`` to its own plateau transform."""
  TRACES["observe_all"] += 1
  return over_configs(mode, lambda s, v: _observe_one(graphdef, s, v), (state, values))


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
    data.DataError: if the data cannot be found or prepared.
  """
  mode = resolve_mode(mode)
  stacked = stack_plans(configs)
  config = next(iter(configs.values()))
  spe = steps_per_epoch(config)
  labels, k = list(configs), len(configs)
  workdir = pathlib.Path(workdir)
  ds = data_lib.load(config.data_dir)
  train_x, train_y = ds["train_images"][:config.train_subset], ds["train_labels"][:config.train_subset]
  test_x, test_y = ds["test_images"][:config.test_subset], ds["test_labels"][:config.test_subset]

  devices = jax.devices()
  mesh = jax.make_mesh((len(devices),), ("batch",), axis_types=(jax.sharding.AxisType.Auto,))
  data_sharding, replicated = NamedSharding(mesh, P("batch")), NamedSharding(mesh, P())
  print(f"Sweep of {k} configurations by {mode} on {len(devices)} {devices[0].platform} "
        f"device(s): {', '.join(labels)}", flush=True)

  graphdef, state = init_state(config.seed, stacked.plans)
  state = jax.device_put(state, replicated)
  schedule = jax.device_put(stacked.schedule, replicated)
  test_batches = list(train.prefetch(train.batches(
      test_x, test_y, train.EVAL_BATCH_FACTOR * config.batch_size, np.arange(len(test_x))),
      data_sharding))
  first = train.to_device(next(train.batches(train_x, train_y, config.batch_size,
                                             np.arange(len(train_x)))), data_sharding)
  jit = lambda f, n: jax.jit(f, static_argnums=tuple(range(n)), out_shardings=replicated)
  t0 = time.perf_counter()
  step = jit(train_all, 3).lower(graphdef, stacked.plateau, mode, state, schedule, first).compile()
  evaluate = jit(eval_all, 2).lower(graphdef, mode, state, test_batches[0]).compile()
  if stacked.plateau:
    observe = jit(observe_all, 2).lower(graphdef, mode, state, jnp.zeros(k, jnp.float32)).compile()
  compile_s = time.perf_counter() - t0

  histories: dict[str, list[dict[str, Any]]] = {label: [] for label in labels}
  start = time.perf_counter()
  for epoch in range(config.epochs):
    t0 = time.perf_counter()
    order = train.epoch_order(config.seed, epoch, len(train_x))
    outs = []
    for batch in train.prefetch(train.batches(train_x, train_y, config.batch_size, order),
                                data_sharding):
      state, m = step(state, schedule, batch)
      outs.append(m)
      if len(outs) > 2:  # a bounded queue of steps in flight
        outs[-3]["lr"].block_until_ready()
    tr = {key: np.stack([np.asarray(o[key]) for o in outs]) for key in outs[0]}  # (steps, K)
    te = jax.tree.map(lambda *x: np.asarray(jnp.sum(jnp.stack(x), axis=0)),  # (K,)
                      *[evaluate(state, b) for b in test_batches])
    test_acc = te["correct"] / te["count"]  # float32, as train.py computes it
    if stacked.plateau:
      state = observe(state, jnp.asarray(test_acc, jnp.float32))
    elapsed = time.perf_counter() - t0
    at = np.unique(np.linspace(0, spe - 1, min(spe, 17)).round().astype(int))
    for i, label in enumerate(labels):
      row = {
          "epoch": epoch + 1,
          "train_loss": float(tr["loss_sum"][:, i].sum() / tr["count"][:, i].sum()),
          "train_acc": float(tr["correct"][:, i].sum() / tr["count"][:, i].sum()),
          "test_loss": float(te["loss_sum"][i] / te["count"][i]),
          "test_acc": float(test_acc[i]),
          "lr": float(tr["lr"][0, i]), "lr_last": float(tr["lr"][-1, i]),
          "time": elapsed,  # the epoch of all K together
          "lr_curve": [[int(j), float(tr["lr"][j, i])] for j in at],
      }
      histories[label].append(row)
      print(f"[{label}] {train.format_row(row)}", flush=True)
  wall_s = time.perf_counter() - start

  rows = []
  for label, history in histories.items():
    rows.append({"configuration": label, **train.summarize(history)})
  summary = (f"{k} configurations trained together by `{mode}` on {devices[0].platform}: "
             f"{wall_s:.1f} s wall time ({wall_s / k:.1f} s per configuration), "
             f"compile {compile_s:.1f} s")
  table = train.results_table(rows, "configuration") + "\n\n" + summary
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
  train.plot(workdir / "sweep.png", histories)
  print(table, flush=True)
  return SweepResult(state, histories, rows)


# --- the learning-rate range test -------------------------------------------------------


def range_batches(images, labels, batch_size: int, seed: int, num_steps: int) -> dict[str, np.ndarray]:
  """`num_steps` training batches stacked on a leading axis, in the epochs' order.

  Runs through as many epochs (each in `train.epoch_order`) as it takes.
  """
  out: list[dict[str, np.ndarray]] = []
  epoch = 0
  while len(out) < num_steps:
    order = train.epoch_order(seed, epoch, len(images))
    out.extend(train.batches(images, labels, batch_size, order))
    epoch += 1
  return {key: np.stack([b[key] for b in out[:num_steps]]) for key in out[0]}


def find_lr(config: train.Config, workdir: str | pathlib.Path, *, num_steps: int = 200,
            min_value: float = 1e-5, max_value: float = 10.0) -> lrjax.RangeTestResult:
  """The learning-rate range test of a fresh LeNet under plain SGD.

  `num_steps` batches of the config's size, rates growing exponentially from
  `min_value` to `max_value`; prints the suggestions and writes
  ``lr_find.json`` and ``lr_find.png`` (the loss against the rate, the
  suggestions marked) to `workdir`.

  Raises:
    ValueError: if a setting is unusable (see `lrjax.lr_range_test`).
    data.DataError: if the data cannot be found or prepared.
  """
  ds = data_lib.load(config.data_dir)
  images, labels = ds["train_images"][:config.train_subset], ds["train_labels"][:config.train_subset]
  stacked = range_batches(images, labels, config.batch_size, config.seed, num_steps)
  graphdef, params = nnx.split(train.LeNet(rngs=nnx.Rngs(config.seed)))

  def loss_fn(p, batch):
    return train._loss(nnx.merge(graphdef, p), batch)[0]  # pylint: disable=protected-access

  t0 = time.perf_counter()
  result = lrjax.lr_range_test(loss_fn, params, stacked, optimizer=optax.sgd,
                               min_value=min_value, max_value=max_value)
  seconds = time.perf_counter() - t0
  suggestions = {"steepest": result.steepest, "valley": result.valley,
                 "minimum_div_10": result.minimum_div_10}
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  finite = lambda xs: [float(x) if math.isfinite(x) else None for x in np.asarray(xs, float)]
  record = {
      "num_steps": num_steps, "batch_size": config.batch_size, "seed": config.seed,
      "train_size": len(images), "min_value": min_value, "max_value": max_value,
      "optimizer": "sgd", "time_s": seconds, "num_valid": result.num_valid,
      "suggestions": {k: (v if math.isfinite(v) else None) for k, v in suggestions.items()},
      "rates": finite(result.rates), "losses": finite(result.losses),
      "smoothed": finite(result.smoothed),
  }
  (workdir / "lr_find.json").write_text(json.dumps(record, indent=1) + "\n")
  plot_range_test(workdir / "lr_find.png", result)
  print(f"LR range test: {num_steps} batches of {config.batch_size}, SGD, rates "
        f"{min_value:g} to {max_value:g}, {result.num_valid} before divergence, "
        f"{seconds:.1f} s")
  print("suggestions: " + ", ".join(f"{k} {v:.3g}" for k, v in suggestions.items()), flush=True)
  return result


def plot_range_test(path: pathlib.Path, result: lrjax.RangeTestResult) -> None:
  """The raw and smoothed loss against the rate (log scale), suggestions marked."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  rates, losses, smoothed = (np.asarray(a, float) for a in result[:3])
  fig, ax = plt.subplots(figsize=(7, 4.5))
  ax.plot(rates, losses, color="0.75", lw=0.8, label="loss")
  ax.plot(rates, smoothed, lw=1.8, label="smoothed loss")
  marks = [("steepest", result.steepest, "tab:red"), ("valley", result.valley, "tab:green"),
           ("minimum / 10", result.minimum_div_10, "tab:purple")]
  for name, value, color in marks:
    if math.isfinite(value):
      ax.axvline(value, color=color, ls="--", lw=1, label=f"{name}: {value:.3g}")
  valid = np.isfinite(smoothed)
  if valid.any():  # from the lowest loss to a little above the start
    lo = min(losses[valid].min(), smoothed[valid].min())
    hi = smoothed[valid][: max(1, valid.sum() // 10)].max()
    pad = 0.05 * max(hi - lo, 1e-3)
    ax.set_ylim(lo - pad, hi + 4 * pad)
  ax.set_xscale("log")
  ax.set_xlabel("learning rate")
  ax.set_ylabel("training loss")
  ax.set_title("learning-rate range test (LeNet, Fashion-MNIST, SGD)")
  ax.grid(alpha=0.3, which="both")
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
