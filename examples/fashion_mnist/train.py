"""LeNet on Fashion-MNIST with Flax NNX, under an lrjax learning-rate schedule.

The optimizer from the config, the jitted train and eval steps, one epoch
loop (`fit`) and `train_and_evaluate(config, workdir)`, as in Flax's own
examples. The optimizer is ``nnx.Optimizer(model, lrjax.inject_hyperparams(
optax.sgd)(learning_rate=schedule), wrt=nnx.Param)`` (or ``optax.adamw``;
chained with `lrjax.reduce_on_plateau` where planned): the schedule is a
value in the optimizer state, so a run traces its train step once, and the
rate logged is the one the update used (`lrjax.hyperparams`). Batches are
sharded over a 1-D mesh of all devices; parameters and optimizer state are
replicated.

`fit` trains K runs together (K states, each its own `reporting.Run`): one
run, the configurations of a sweep, the cooldown branches of `branch.py`;
`Programs` says how their steps run (`programs_in_threads` here, one program
over K stacked states in `sweep.py`).
"""

from __future__ import annotations

import concurrent.futures
import functools
import pathlib
import sys
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

import input_pipeline
import models
import reporting
import schedules
from configs import default

Config = default.Config
EVAL_BATCH_FACTOR = 4  # eval batches are this many train batches
# The plateau settings a state holds (`lrjax.set_plateau_settings`); the others build the transform.
PLATEAU_SETTABLE = ("factor", "patience", "threshold", "cooldown", "min_scale", "eps")


def steps_per_epoch(config: Config, train_size: int = input_pipeline.TRAIN_SIZE) -> int:
  """Optimizer steps per epoch: the last, partial batch counts."""
  return -(-min(config.train_subset or train_size, train_size) // config.batch_size)


def check_config(config: Config) -> None:
  """Raises ValueError, naming the setting, for any value the run cannot use."""
  default.check(config)
  n = jax.device_count()
  if config.batch_size % n:
    raise ValueError(f"batch_size must be a multiple of the {n} devices, got {config.batch_size}")
  schedules.make_plan(config, steps_per_epoch(config))


# --- model and optimizer -----------------------------------------------------


def create_model(config: Config) -> models.LeNet:
  """A fresh LeNet from ``config.seed``; ``config.conv_impl`` picks its code (`models.create`)."""
  return models.create(config.conv_impl, config.seed)


def hyperparams(config: Config, plan: schedules.Plan) -> dict[str, Any]:
  """The keyword arguments of ``lrjax.inject_hyperparams(<optimizer>)``."""
  out: dict[str, Any] = {"learning_rate": plan.schedule}
  if config.optimizer == "adamw":
    out["weight_decay"] = (default.ADAMW_WEIGHT_DECAY if config.weight_decay is None
                           else config.weight_decay)
  if plan.momentum is not None:
    out["momentum" if config.optimizer == "sgd" else "b1"] = plan.momentum
  return out


def create_train_state(model: models.LeNet, config: Config, plan: schedules.Plan,
                       transforms: dict[Any, optax.GradientTransformation] | None = None):
  """``nnx.split((model, optimizer))``: the config's optimizer under `plan`.

  Args:
    model: the model to train.
    config: its ``optimizer`` (with ``weight_decay``) is used.
    plan: the schedule, momentum and plateau settings.
    transforms: a cache of optimizer transforms by structure, shared by runs
      that reuse each other's traced steps (`compare`, `sweep`, `branch`):
      a plan whose hyperparameters have the structure of an earlier one's
      gets that transform, so the same graph definition, with its own
      schedules (`lrjax.set_hyperparams`) and plateau settings
      (`lrjax.set_plateau_settings`, those of `PLATEAU_SETTABLE`; the
      others are part of the structure) put into the state.

  Returns:
    The graph definition and the state of (model, optimizer).
  """
  hp = hyperparams(config, plan)
  plateau = plan.plateau or {}
  built = {k: v for k, v in plateau.items() if k not in PLATEAU_SETTABLE}  # fixed in the transform
  key = (config.optimizer, jax.tree.structure(hp), plan.plateau is None, str(sorted(built.items())))
  transforms = {} if transforms is None else transforms
  cached = key in transforms
  if not cached:
    transforms[key] = lrjax.inject_hyperparams(getattr(optax, config.optimizer))(**hp)
    if plan.plateau is not None:
      transforms[key] = optax.chain(transforms[key], lrjax.reduce_on_plateau(**plan.plateau))
  opt = nnx.Optimizer(model, transforms[key], wrt=nnx.Param)
  if cached:
    opt.opt_state = lrjax.set_hyperparams(opt.opt_state, **hp)
    if plan.plateau is not None:
      opt.opt_state = lrjax.set_plateau_settings(
          opt.opt_state, **{k: v for k, v in plateau.items() if k in PLATEAU_SETTABLE})
  return nnx.split((model, opt))


# --- steps -------------------------------------------------------------------
# Pure functions of (graphdef, state, ...): `nnx.merge` rebuilds the model and
# optimizer inside the trace, `nnx.state` returns their new state.


def loss_and_metrics(model: models.LeNet, batch: dict[str, jax.Array]):
  """Mean cross-entropy over the real (weight 1) examples of the batch, and
  the batch's summed loss, correct count and example count."""
  images = (batch["image"].astype(jnp.float32) / 255.0 - 0.5) / 0.5
  logits = model(images[..., None])
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
  w = batch["weight"]
  count = jnp.sum(w)
  correct = jnp.sum(w * (jnp.argmax(logits, -1) == batch["label"]).astype(jnp.float32))
  stats = {"loss_sum": jnp.sum(w * losses), "correct": correct, "count": count}
  return stats["loss_sum"] / jnp.maximum(count, 1.0), stats


def train_step(graphdef, state, batch):
  """One update; returns the new state and the batch's metrics, with ``lr``:
  the schedule's value the update used times the plateau scale (1 without
  the plateau transform)."""
  model, opt = nnx.merge(graphdef, state)
  grads, stats = nnx.grad(loss_and_metrics, has_aux=True)(model, batch)
  opt.update(model, grads)
  lr = jnp.asarray(lrjax.hyperparams(opt.opt_state)["learning_rate"], jnp.float32)
  scale = lrjax.plateau_scale(opt.opt_state, default=1.0)
  return nnx.state((model, opt)), dict(stats, lr=lr * scale, plateau_scale=scale)


def eval_step(graphdef, state, batch):
  """Summed loss, correct count and example count on one batch."""
  model, _ = nnx.merge(graphdef, state)
  return loss_and_metrics(model, batch)[1]


def observe_step(graphdef, state, value):
  """Feeds one epoch's monitored metric to the plateau transform."""
  model, opt = nnx.merge(graphdef, state)
  opt.opt_state = lrjax.observe_plateau(opt.opt_state, value)
  return nnx.state((model, opt))


def _gather(images, labels, idx, weight, sharding):
  """The batch of rows `idx` of the on-device split, sharded on its first axis."""
  batch = {"image": images[idx], "label": labels[idx], "weight": weight}
  return jax.lax.with_sharding_constraint(batch, sharding)


def train_steps(graphdef, state, images, labels, idx, weight, *, sharding):
  """`train_step` over the batches ``images[idx[i]]`` (``lax.scan``): one
  compiled program for a chunk of ``(steps, batch)`` rows `idx` and their
  weights; returns the new state and each metric as a ``(steps,)`` array."""

  def body(state, xs):
    return train_step(graphdef, state, _gather(images, labels, *xs, sharding))

  return jax.lax.scan(body, state, (idx, weight))


def eval_steps(graphdef, state, images, labels, idx, weight, *, sharding):
  """The sums of `eval_step` over the batches ``images[idx[i]]`` (``lax.scan``)."""

  def body(carry, xs):
    return carry, eval_step(graphdef, state, _gather(images, labels, *xs, sharding))

  _, out = jax.lax.scan(body, (), (idx, weight))
  return jax.tree.map(lambda x: jnp.sum(x, axis=0), out)


class Steps(NamedTuple):
  """The jitted steps (outputs replicated): `train_steps`, `eval_steps`, `observe_step`."""

  train_chunk: Callable
  evaluate_all: Callable
  observe: Callable


@functools.lru_cache
def jitted_steps(mesh: jax.sharding.Mesh) -> Steps:
  """The steps jitted once per mesh (so runs with one graph definition share traces)."""
  jit = functools.partial(jax.jit, static_argnums=0, out_shardings=NamedSharding(mesh, P()))
  batch = NamedSharding(mesh, P("batch"))
  return Steps(jit(functools.partial(train_steps, sharding=batch)),
               jit(functools.partial(eval_steps, sharding=batch)), jit(observe_step))


def chunk_steps(steps: int, at_least: int = 32) -> int:
  """Steps per compiled chunk of an epoch: the smallest divisor of `steps`
  that is at least ``min(steps, at_least)`` (67 of 469), so every chunk has
  one shape (one compile) and the progress bar advances a few times an epoch."""
  return next(d for d in range(min(steps, at_least), steps + 1) if steps % d == 0)


# --- data on the devices -------------------------------------------------------


class OnDevice(NamedTuple):
  """Both splits on the devices (replicated), the test pass's batch rows, the mesh."""

  train: dict[str, jax.Array]  # "image" (N, 28, 28) uint8, "label" (N,) int32
  test: dict[str, jax.Array]
  test_idx: dict[str, jax.Array]  # "idx", "weight": (steps, EVAL_BATCH_FACTOR * batch)
  mesh: jax.sharding.Mesh
  replicated: NamedSharding

  def test_args(self) -> tuple:
    return self.test["image"], self.test["label"], self.test_idx["idx"], self.test_idx["weight"]


def put_on_device(config: Config, ds: dict[str, np.ndarray]) -> OnDevice:
  """The config's subsets of `ds` (`input_pipeline.load`) on the devices, once
  for the whole run: each epoch then sends only its batch rows."""
  mesh, _, replicated = input_pipeline.make_mesh()
  put = lambda arrays: input_pipeline.to_device(arrays, replicated)
  n, m = config.train_subset, config.test_subset
  test_idx = input_pipeline.batch_indices(np.arange(len(ds["test_images"][:m])),
                                          EVAL_BATCH_FACTOR * config.batch_size)
  return OnDevice(put({"image": ds["train_images"][:n], "label": ds["train_labels"][:n]}),
                  put({"image": ds["test_images"][:m], "label": ds["test_labels"][:m]}),
                  put(dict(zip(("idx", "weight"), test_idx))), mesh, replicated)


def epoch_batches(config: Config, epoch: int, train_size: int) -> tuple[np.ndarray, np.ndarray]:
  """The rows and weights of the epoch's batches (`input_pipeline.batch_indices`),
  in the order drawn from ``(config.seed, epoch)``."""
  order = input_pipeline.epoch_order(config.seed, epoch, train_size)
  return input_pipeline.batch_indices(order, config.batch_size)


# --- K runs' programs and the loop ----------------------------------------------


class Programs(NamedTuple):
  """How K runs' steps run, on their state (a list of K states, or one stacked):
  ``train(state, idx, weight)`` with NumPy ``(K, steps, batch)`` rows ->
  (state, metrics: a list of K dicts of ``(steps,)`` or one dict of
  ``(K, steps)``), ``evaluate(state)`` -> each sum ``(K,)``, ``observe(state,
  values)`` (None without the plateau transform), ``member(state, k)``."""

  train: Callable
  evaluate: Callable
  observe: Callable | None
  member: Callable
  state: Any  # the initial state, in the programs' form


def stack(trees: Sequence[Any]) -> Any:
  """The pytrees `trees` (of one structure) stacked on a new leading axis."""
  return jax.tree.map(lambda *x: jnp.stack(x), *trees)


def programs_in_threads(graphdef, states: list, data: OnDevice, plateau: bool,
                        pool: concurrent.futures.Executor | None = None) -> Programs:
  """K runs, each its own state and the one jitted chunk (`jitted_steps`),
  run at the same time from the threads of `pool` (K > 1; bit for bit as
  each alone): on a CPU, K programs from K threads fill each other's idle cores."""
  steps = jitted_steps(data.mesh)
  images, labels = data.train["image"], data.train["label"]

  def each(fn, *per_run):
    if len(states) == 1:
      return [fn(*args) for args in zip(*per_run)]  # asynchronous: the epoch loop waits
    return list(pool.map(lambda args: jax.block_until_ready(fn(*args)), zip(*per_run)))

  def train(states, idx, weight):
    put = lambda i, w: input_pipeline.to_device({"idx": i, "weight": w}, data.replicated)
    chunk = lambda s, i, w: steps.train_chunk(graphdef, s, images, labels, **put(i, w))
    outs = each(chunk, states, idx, weight)
    return [s for s, _ in outs], [m for _, m in outs]

  evaluate = lambda states: stack(each(
      lambda s: steps.evaluate_all(graphdef, s, *data.test_args()), states))
  observe = lambda states, values: each(
      lambda s, v: steps.observe(graphdef, s, v), states, list(values))
  return Programs(train, evaluate, observe if plateau else None, lambda s, k: s[k], states)


def _metrics_on_host(metrics) -> dict[str, np.ndarray]:
  """Each metric as ``(steps, K)`` NumPy, from either form `Programs.train` returns."""
  if isinstance(metrics, list):
    return {k: np.stack([input_pipeline.host(m[k]) for m in metrics], axis=1) for k in metrics[0]}
  return {k: input_pipeline.host(v).T for k, v in metrics.items()}


def train_epoch(train: Callable, state, idx: np.ndarray, weight: np.ndarray,
                progress: Callable[[int], Any] | None = None):
  """``state, metrics = train(state, idx, weight)`` over the epoch's chunks of
  ``(K, steps, batch)`` rows (`chunk_steps` each); returns the state and each
  metric ``(steps, K)`` as NumPy.

  One chunk is in flight while the previous one's metrics come back (the
  host's only sync within the epoch); `progress` is told the steps of each
  finished chunk. When every run's loss in a chunk is not finite, the epoch
  stops there (its metrics then cover fewer steps).
  """
  size = chunk_steps(idx.shape[1])
  progress = progress or (lambda steps: None)
  outs: list[dict[str, np.ndarray]] = []
  pending = []
  for c in range(0, idx.shape[1], size):
    state, metrics = train(state, idx[:, c:c + size], weight[:, c:c + size])
    pending.append(metrics)
    if len(pending) > 1:
      outs.append(_metrics_on_host(pending.pop(0)))
      progress(size)
      if not np.isfinite(outs[-1]["loss_sum"]).any():
        break
  outs.extend(_metrics_on_host(m) for m in pending)
  progress(size)
  return state, {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}


def fit(config: Config, programs: Programs, runs: Sequence[reporting.Run], data: OnDevice,
        epochs: range, *, offsets: Sequence[int] | None = None,
        stop: Callable[[], bool] | None = None):
  """The epoch loop of K runs trained together; returns their final state.

  Each epoch: the batch rows of run k's epoch ``epoch + offsets[k]`` (the
  ``(seed, epoch)`` order; offsets let branches from different epochs train
  together), trained in chunks (`train_epoch`, a progress bar per chunk when
  ``config.progress``), one test pass, the test accuracy to the plateau
  transform, then each run's row to its `reporting.Run` (the console line,
  metrics files, TensorBoard, its checkpoint). A run whose training loss is
  not finite is marked diverged and writes nothing more. The loop ends
  after `epochs`, when every run has diverged, or when `stop` (asked after
  each epoch's checkpoints) returns True.
  """
  offsets = offsets or [0] * len(runs)
  train_size = len(data.train["label"])
  for epoch in epochs:
    t0 = time.perf_counter()
    idx, weight = (np.stack(a) for a in zip(*(epoch_batches(config, epoch + o, train_size)
                                              for o in offsets)))
    bar = None
    if config.progress and jax.process_index() == 0:
      from tqdm import tqdm  # pylint: disable=import-outside-toplevel
      bar = tqdm(total=idx.shape[1], desc=f"{runs[0].prefix}Epoch {epoch + 1}", leave=False,
                 file=sys.stdout, dynamic_ncols=True)
    state, tr = train_epoch(programs.train, programs.state, idx, weight,
                            None if bar is None else bar.update)
    if bar is not None:
      bar.close()
    te = input_pipeline.host(programs.evaluate(state))
    if programs.observe is not None:
      state = programs.observe(state, jnp.asarray(te["correct"] / te["count"], jnp.float32))
    seconds = time.perf_counter() - t0
    for k, run in enumerate(runs):
      run.add(epoch + offsets[k] + 1, {key: v[:, k] for key, v in tr.items()},
              {key: v[k] for key, v in te.items()}, seconds, lambda k=k: programs.member(state, k))
    programs = programs._replace(state=state)
    if all(r.diverged for r in runs):
      break
    if stop is not None and stop() and epoch + 1 < epochs.stop:
      for r in runs:
        r.log(f"Stopped after epoch {epoch + 1}; --resume continues from its checkpoint")
      break
  return programs.state


class Result(NamedTuple):
  """What `train_and_evaluate` returns."""

  state: nnx.State  # of (model, optimizer), as `nnx.split((model, optimizer))` gives
  history: list[dict[str, Any]]  # one row per epoch, as in metrics.json
  diverged: int | None = None  # the epoch whose loss was not finite, if any
  failure: str = ""  # the line that says so


def train_and_evaluate(config: Config, workdir: str | pathlib.Path, *,
                       transforms: dict[Any, optax.GradientTransformation] | None = None,
                       name: str | None = None, stop: Callable[[], bool] | None = None) -> Result:
  """Trains LeNet under `config` in `workdir`.

  Writes ``metrics.json``, ``metrics.csv``, TensorBoard event files,
  ``plot.png`` and ``checkpoints/`` to `workdir`, and prints one line per
  epoch (`reporting.Run`).

  Args:
    config: the run's settings (checked by `check_config`).
    workdir: where its outputs go; created and written to before the data is
      loaded.
    transforms: see `create_train_state`.
    name: printed before each of the run's lines (``[name] ...``), for runs
      that share the terminal (`compare.compare` with ``jobs > 1``).
    stop: asked after each epoch, once its checkpoint is written; when it
      returns True the run ends there (resumable with ``config.resume``).

  Returns:
    The final state of (model, optimizer), the per-epoch history, and the
    epoch whose training loss was not finite, if one was.

  Raises:
    reporting.OutputError: if `workdir` cannot be written.
    reporting.ResumeError: if ``config.resume`` meets a checkpoint made with
      other settings, or none that restores.
    input_pipeline.DataError: if the data cannot be found or prepared.
  """
  run = reporting.Run(workdir, name=name)
  ds = input_pipeline.load(config.data_dir)
  spe = steps_per_epoch(config, len(ds["train_images"]))
  devices = jax.devices()
  run.log(f"JAX {jax.__version__} on {len(devices)} {devices[0].platform} device(s) "
          f"({jax.process_count()} process(es)): {', '.join(str(d) for d in devices)}")
  plan = schedules.make_plan(config, spe)
  graphdef, state = create_train_state(create_model(config), config, plan, transforms)
  data = put_on_device(config, ds)
  state = jax.device_put(state, data.replicated)  # every leaf an array (inject_hyperparams' init)
  record = {
      "config": default.trajectory(config) | {"epochs": config.epochs},
      "schedule": plan.schedule.to_dict(), "plateau": plan.plateau, "steps_per_epoch": spe,
      "train_size": len(data.train["label"]), "test_size": len(data.test["label"]),
      "devices": [str(d) for d in devices], "history": []}
  with run:
    run.start(state, record, resume=config.resume)
    programs = programs_in_threads(graphdef, [run.state], data, plan.plateau is not None)
    state = fit(config, programs, [run], data, range(len(run.history), config.epochs),
                stop=stop)[0]
  if not run.diverged:
    run.finish(config.schedule)
  return Result(state, run.history, run.diverged, run.failure)
