"""LeNet on Fashion-MNIST with Flax NNX, under an lrjax learning-rate schedule.

The optimizer, one jitted train step, one jitted eval step and the loop
`train_and_evaluate(config, workdir)`, as in Flax's own examples. The
optimizer is ``nnx.Optimizer(model, lrjax.inject_hyperparams(optax.sgd)(
learning_rate=schedule), wrt=nnx.Param)`` (chained with
`lrjax.reduce_on_plateau` where planned): the schedule is a value in the
optimizer state, so a run traces its train step once, and the rate logged
is the one the update used (`lrjax.hyperparams`). Batches are sharded over a
1-D mesh of all devices; parameters and optimizer state are replicated.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import pathlib
import shutil
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec as P

import lrjax

import input_pipeline
import lenet_patches
import models
import reporting
import schedules
from configs import default

Config = default.Config

# How many times each step function has been traced in this process: the
# tests check that a run traces its train step exactly once.
TRACES: collections.Counter[str] = collections.Counter()

EVAL_BATCH_FACTOR = 4  # eval batches are this many train batches

ResumeError = reporting.ResumeError


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
  """A fresh LeNet from ``config.seed``; ``config.conv_impl`` picks its code.

  ``"xla"``: `models.LeNet` (`nnx.Conv`, `nnx.max_pool`); ``"patches"``:
  `lenet_patches.LeNetPatches` (the same parameters, about 3x faster on
  XLA:CPU); ``"auto"``: ``"patches"`` on CPU, ``"xla"`` elsewhere.
  """
  impl = config.conv_impl
  if impl == "auto":
    impl = "patches" if jax.default_backend() == "cpu" else "xla"
  cls = lenet_patches.LeNetPatches if impl == "patches" else models.LeNet
  return cls(rngs=nnx.Rngs(config.seed))


def make_tx(plan: schedules.Plan) -> optax.GradientTransformationExtraArgs:
  """SGD whose rate (and momentum) are the plan's schedules, held in the
  optimizer state; then the plateau transform where planned."""
  tx = lrjax.inject_hyperparams(optax.sgd)(**plan.hyperparams())
  if plan.plateau is not None:
    tx = optax.chain(tx, lrjax.reduce_on_plateau(**plan.plateau))
  return tx


def _is_plateau(x: Any) -> bool:
  return isinstance(x, lrjax.ReduceOnPlateauState)


def _plateau_states(opt_state: Any) -> list[lrjax.ReduceOnPlateauState]:
  return [s for s in jax.tree.leaves(opt_state, is_leaf=_is_plateau) if _is_plateau(s)]


def create_train_state(model: models.LeNet, plan: schedules.Plan,
                       transforms: dict[Any, optax.GradientTransformation] | None = None):
  """``nnx.split((model, optimizer))`` of SGD under `plan`.

  Args:
    model: the model to train.
    plan: the schedule, momentum and plateau settings.
    transforms: a cache of optimizer transforms by plan structure, shared by
      runs that should reuse each other's traced steps (`sweep.compare` and
      `sweep.sweep` pass one). A plan whose schedules have the structure of an
      earlier one's gets that plan's transform, so the same graph definition,
      with its own schedules swapped into the state by
      `lrjax.set_hyperparams` and its own plateau settings written into the
      plateau state (which holds them).

  Returns:
    The graph definition and the state of (model, optimizer).
  """
  key = (jax.tree.structure(plan.hyperparams()), plan.plateau is None)
  cached = transforms is not None and key in transforms
  tx = transforms[key] if cached else make_tx(plan)
  if transforms is not None:
    transforms[key] = tx
  opt = nnx.Optimizer(model, tx, wrt=nnx.Param)
  if cached:
    opt.opt_state = lrjax.set_hyperparams(opt.opt_state, **plan.hyperparams())
    if plan.plateau is not None:
      settings = lrjax.reduce_on_plateau(**plan.plateau).init(None).settings
      for s in _plateau_states(opt.opt_state):
        s.settings[...] = settings
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
  """One SGD update; returns the new state and the batch's metrics.

  The metrics include ``lr``, the rate the update applied: the schedule's
  value it used (`lrjax.hyperparams`) times the plateau scale
  (``plateau_scale``, 1 without the plateau transform).
  """
  TRACES["train_step"] += 1
  model, opt = nnx.merge(graphdef, state)
  grads, stats = nnx.grad(loss_and_metrics, has_aux=True)(model, batch)
  opt.update(model, grads)
  lr = jnp.asarray(lrjax.hyperparams(opt.opt_state)["learning_rate"], jnp.float32)
  scale = (lrjax.plateau_scale(opt.opt_state) if _plateau_states(opt.opt_state)
           else jnp.ones((), jnp.float32))
  return nnx.state((model, opt)), dict(stats, lr=lr * scale, plateau_scale=scale)


def eval_step(graphdef, state, batch):
  """Summed loss, correct count and example count on one batch."""
  TRACES["eval_step"] += 1
  model, _ = nnx.merge(graphdef, state)
  return loss_and_metrics(model, batch)[1]


def observe_step(graphdef, state, value):
  """Feeds one epoch's monitored metric to the plateau transform."""
  TRACES["observe_step"] += 1
  model, opt = nnx.merge(graphdef, state)
  opt.opt_state = lrjax.observe_plateau(opt.opt_state, value)
  return nnx.state((model, opt))


def _gather(images, labels, idx, weight, sharding):
  """The batch of rows `idx` of the on-device split, sharded on its first axis."""
  batch = {"image": images[idx], "label": labels[idx], "weight": weight}
  return jax.lax.with_sharding_constraint(batch, sharding)


def train_steps(graphdef, state, images, labels, idx, weight, *, sharding, unroll=1):
  """`train_step` over the batches ``images[idx[i]]`` (``lax.scan``): one
  compiled program for a chunk of steps, its metrics stacked over them.

  Args:
    graphdef: of (model, optimizer).
    state: of (model, optimizer).
    images, labels: the whole training split, on the devices (replicated).
    idx: ``(steps, batch)`` int32 rows of `images`, from
      `input_pipeline.batch_indices`.
    weight: ``(steps, batch)`` weights of those rows (0 for padding).
    sharding: of a batch (on its first axis over the mesh).
    unroll: ``lax.scan``'s `unroll`.

  Returns:
    The new state and each of `train_step`'s metrics as a ``(steps,)`` array.
  """

  def body(state, xs):
    return train_step(graphdef, state, _gather(images, labels, *xs, sharding))

  return jax.lax.scan(body, state, (idx, weight), unroll=unroll)


def eval_steps(graphdef, state, images, labels, idx, weight, *, sharding):
  """The sums of `eval_step` over the batches ``images[idx[i]]`` (``lax.scan``)."""

  def body(carry, xs):
    return carry, eval_step(graphdef, state, _gather(images, labels, *xs, sharding))

  _, out = jax.lax.scan(body, (), (idx, weight))
  return jax.tree.map(lambda x: jnp.sum(x, axis=0), out)


class Steps(NamedTuple):
  """The jitted steps, outputs replicated over the mesh: ``train_chunk`` and
  ``evaluate_all`` run a chunk of batches cut on the device from the whole
  split (`train_steps`, `eval_steps`), ``observe`` feeds the plateau transform."""

  train_chunk: Callable
  evaluate_all: Callable
  observe: Callable


TRAIN_UNROLL = 1  # lax.scan's unroll in train_steps (measured: see the README)


@functools.lru_cache
def jitted_steps(mesh: jax.sharding.Mesh) -> Steps:
  """The steps jitted once per mesh (so runs with one graph definition share traces)."""
  jit = functools.partial(jax.jit, static_argnums=0, out_shardings=NamedSharding(mesh, P()))
  batch = NamedSharding(mesh, P("batch"))
  return Steps(jit(functools.partial(train_steps, sharding=batch, unroll=TRAIN_UNROLL)),
               jit(functools.partial(eval_steps, sharding=batch)), jit(observe_step))


def chunk_steps(steps: int, at_least: int = 32) -> int:
  """Steps per compiled chunk of an epoch: the smallest divisor of `steps`
  that is at least ``min(steps, at_least)`` (67 of 469), so every chunk has
  one shape (one compile) and the progress bar advances a few times an epoch."""
  return next(d for d in range(min(steps, at_least), steps + 1) if steps % d == 0)


def train_epoch_on_device(chunk: Callable, state, idx: np.ndarray, weight: np.ndarray,
                          replicated: NamedSharding, progress: Callable[[int], Any] | None = None):
  """``state, metrics = chunk(state, idx, weight)`` over the epoch's chunks of
  batch rows (`input_pipeline.batch_indices`, cut into chunks of
  `chunk_steps`); returns the final state and each metric over the steps, as
  NumPy.

  One chunk is in flight while the previous one's end is waited for (the
  host's only sync with the devices within the epoch), and `progress` is
  told how many steps each finished chunk did.
  """
  steps = len(idx)
  size = chunk_steps(steps)
  outs = []
  for c in range(0, steps, size):
    xs = input_pipeline.to_device({"idx": idx[c:c + size], "weight": weight[c:c + size]}, replicated)
    state, m = chunk(state, xs["idx"], xs["weight"])
    outs.append(m)
    if len(outs) > 1:
      outs[-2]["lr"].block_until_ready()
      if progress is not None:
        progress(size)
  outs = input_pipeline.host(outs)
  if progress is not None:
    progress(size)
  return state, {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}


class OnDevice(NamedTuple):
  """Both splits on the devices (replicated), and the test pass's batch rows."""

  train: dict[str, jax.Array]  # "image" (N, 28, 28) uint8, "label" (N,) int32
  test: dict[str, jax.Array]
  test_idx: dict[str, jax.Array]  # "idx", "weight": (steps, EVAL_BATCH_FACTOR * batch)


def put_on_device(config: Config, ds: dict[str, np.ndarray], replicated: NamedSharding) -> OnDevice:
  """The config's subsets of `ds` (`input_pipeline.load`) on the devices, once
  for the whole run: each epoch then sends only its batch rows."""
  n, m = config.train_subset, config.test_subset
  test_idx = input_pipeline.batch_indices(np.arange(len(ds["test_images"][:m])),
                                          EVAL_BATCH_FACTOR * config.batch_size)
  return OnDevice(
      input_pipeline.to_device({"image": ds["train_images"][:n], "label": ds["train_labels"][:n]},
                               replicated),
      input_pipeline.to_device({"image": ds["test_images"][:m], "label": ds["test_labels"][:m]},
                               replicated),
      input_pipeline.to_device(dict(zip(("idx", "weight"), test_idx)), replicated))


def epoch_batches(config: Config, epoch: int, train_size: int) -> tuple[np.ndarray, np.ndarray]:
  """The rows and weights of the epoch's batches (`input_pipeline.batch_indices`),
  in the order drawn from ``(config.seed, epoch)``."""
  order = input_pipeline.epoch_order(config.seed, epoch, train_size)
  return input_pipeline.batch_indices(order, config.batch_size)


# --- the loop ----------------------------------------------------------------


class Result(NamedTuple):
  """What `train_and_evaluate` returns."""

  state: nnx.State  # of (model, optimizer), as `nnx.split((model, optimizer))` gives
  history: list[dict[str, Any]]  # one row per epoch, as in metrics.json


def train_and_evaluate(config: Config, workdir: str | pathlib.Path, *,
                       transforms: dict[Any, optax.GradientTransformation] | None = None,
                       name: str | None = None,
                       stop: Callable[[], bool] | None = None) -> Result:
  """Trains LeNet under `config` in `workdir`.

  Writes ``metrics.json``, ``metrics.csv``, TensorBoard event files,
  ``plot.png`` and ``checkpoints/`` to `workdir`, and prints one line per
  epoch.

  Args:
    config: the run's settings.
    workdir: where its outputs go.
    transforms: see `create_train_state`.
    name: printed before each of the run's lines (``[name] ...``), for runs
      that share the terminal (`sweep.compare` with ``jobs > 1``).
    stop: asked after each epoch, once its checkpoint is written; when it
      returns True the run ends there (resumable with ``config.resume``) and
      returns the history so far.

  Returns:
    The final state of (model, optimizer) and the per-epoch history.

  Raises:
    ValueError: if a setting of `config` is unusable (see `check_config`).
    ResumeError: if `config.resume` meets a checkpoint made with other settings.
    input_pipeline.DataError: if the data cannot be found or prepared.
  """
  check_config(config)
  workdir = pathlib.Path(workdir)
  main_process = jax.process_index() == 0
  prefix = "" if name is None else f"[{name}] "
  log = (lambda *a, **k: print(prefix + " ".join(map(str, a)), **k)) if main_process else (
      lambda *a, **k: None)
  ds = input_pipeline.load(config.data_dir)
  train_size = len(ds["train_images"][:config.train_subset])
  test_size = len(ds["test_images"][:config.test_subset])
  spe = steps_per_epoch(config, len(ds["train_images"]))

  mesh, _, replicated = input_pipeline.make_mesh()
  devices = jax.devices()
  log(f"JAX {jax.__version__} on {len(devices)} {devices[0].platform} device(s) "
      f"({jax.process_count()} process(es)): {', '.join(str(d) for d in devices)}")
  plan = schedules.make_plan(config, spe)
  graphdef, state = create_train_state(create_model(config), plan, transforms)
  state = jax.device_put(state, replicated)  # every leaf an array (inject_hyperparams' init)
  steps = jitted_steps(mesh)

  record = {
      "config": dataclasses.asdict(config) | {"resume": False, "progress": False},
      "schedule": plan.schedule.to_dict(), "plateau": plan.plateau,
      "momentum": plan.momentum.to_dict() if isinstance(plan.momentum, lrjax.Schedule) else plan.momentum,
      "steps_per_epoch": spe, "train_size": train_size, "test_size": test_size,
      "devices": [str(d) for d in devices], "history": [],
  }
  ckpt_dir = workdir / "checkpoints"
  if main_process:
    workdir.mkdir(parents=True, exist_ok=True)
    if not config.resume and ckpt_dir.exists():
      shutil.rmtree(ckpt_dir)  # a fresh run replaces an old one's checkpoints
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices("workdir ready")
  ckpts = reporting.Checkpoints(ckpt_dir)
  tensorboard = None
  try:
    if config.resume and ckpts.latest() is not None:
      state, saved = ckpts.restore(state)
      reporting.check_same_run(saved, record, workdir)
      record["history"] = saved["history"]
      log(f"Resuming {workdir} after epoch {ckpts.latest()}")
    if main_process:
      tensorboard = reporting.TensorBoard(workdir, fresh=not record["history"])

    data = put_on_device(config, ds, replicated)
    chunk = lambda st, i, w: steps.train_chunk(graphdef, st, data.train["image"],
                                               data.train["label"], i, w)
    for epoch in range(len(record["history"]), config.epochs):
      t0 = time.perf_counter()
      idx, weight = epoch_batches(config, epoch, train_size)
      bar = None
      if config.progress and main_process:
        from tqdm import tqdm  # pylint: disable=import-outside-toplevel
        bar = tqdm(total=spe, desc=f"{prefix}Epoch {epoch + 1}", leave=False,
                   file=sys.stdout, dynamic_ncols=True)
      state, tr = train_epoch_on_device(
          chunk, state, idx, weight, replicated,
          None if bar is None else bar.update)
      if bar is not None:
        bar.close()
      te = input_pipeline.host(steps.evaluate_all(graphdef, state, data.test["image"],
                                                  data.test["label"], data.test_idx["idx"],
                                                  data.test_idx["weight"]))
      if plan.plateau is not None:
        state = steps.observe(graphdef, state, jnp.float32(te["correct"] / te["count"]))
      row = reporting.epoch_row(epoch + 1, tr, te, time.perf_counter() - t0)
      record["history"].append(row)
      log(reporting.format_row(row), flush=True)
      if main_process:
        reporting.write_metrics(workdir, record)
        tensorboard.write(row, tr["lr"], first_step=epoch * spe)
      ckpts.save(epoch + 1, state, record)
      if stop is not None and stop() and epoch + 1 < config.epochs:
        log(f"Stopped after epoch {epoch + 1}; --resume continues from its checkpoint", flush=True)
        return Result(state, record["history"])
  finally:
    ckpts.close()  # waits for the last save, also after an interrupt
    if tensorboard is not None:
      tensorboard.close()
  if main_process:
    reporting.write_metrics(workdir, record)
    reporting.plot(workdir / "plot.png", {schedules.label(config.schedule): record["history"]})
  return Result(state, record["history"])
