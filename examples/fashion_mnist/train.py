"""LeNet on Fashion-MNIST with Flax NNX, under an lrjax learning-rate schedule.

The optimizer from the config, the jitted train and eval steps, the epoch loop
`fit` and `train_and_evaluate(config, workdir)`, as in Flax's own examples.
The schedule is a value in the optimizer state, so a run traces its train step
once, and the rate logged is the one the update used. `fit` trains K runs
together: one run, a sweep's configurations, `branch.py`'s branches.
"""

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
import tqdm
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

  `transforms` caches the transforms by structure for runs that share traced
  steps: a plan of an earlier one's structure gets its transform (so its
  graph definition), with its own schedules and plateau settings in the state.
  """
  hp = hyperparams(config, plan)
  plateau = plan.plateau or {}
  settable = {k: v for k, v in plateau.items() if k in PLATEAU_SETTABLE}
  key = (config.optimizer, jax.tree.structure(hp), plan.plateau is None,
         str(sorted((k, v) for k, v in plateau.items() if k not in settable)))
  transforms = {} if transforms is None else transforms
  if key not in transforms:
    tx = lrjax.inject_hyperparams(getattr(optax, config.optimizer))(**hp)
    transforms[key] = tx if plan.plateau is None else optax.chain(
        tx, lrjax.reduce_on_plateau(**plan.plateau))
  opt = nnx.Optimizer(model, transforms[key], wrt=nnx.Param)
  opt.opt_state = lrjax.set_hyperparams(opt.opt_state, **hp)
  if settable:
    opt.opt_state = lrjax.set_plateau_settings(opt.opt_state, **settable)
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


def _gather(split, idx, weight, sharding):
  """The batch of rows `idx` of the on-device split, sharded on its first axis."""
  batch = {"image": split["image"][idx], "label": split["label"][idx], "weight": weight}
  return jax.lax.with_sharding_constraint(batch, sharding)


def train_steps(graphdef, state, split, idx, weight, *, sharding):
  """`train_step` over the batches of `split` ("image", "label") at the rows
  `idx` (``lax.scan``): one compiled program for a chunk of ``(steps, batch)``
  rows and their weights; returns the new state and each metric ``(steps,)``."""

  def body(state, xs):
    return train_step(graphdef, state, _gather(split, *xs, sharding))

  return jax.lax.scan(body, state, (idx, weight))


def eval_steps(graphdef, state, test, *, sharding):
  """The sums of `eval_step` over the batches of `test` at its rows
  ``test["idx"]`` with weights ``test["weight"]`` (``lax.map``)."""
  out = jax.lax.map(lambda xs: eval_step(graphdef, state, _gather(test, *xs, sharding)),
                    (test["idx"], test["weight"]))
  return jax.tree.map(lambda x: jnp.sum(x, axis=0), out)


@functools.lru_cache
def jitted_steps(mesh: jax.sharding.Mesh, vmap: bool = False) -> tuple[Callable, ...]:
  """`train_steps`, `eval_steps` and `observe_step` jitted once per mesh (so
  runs with one graph definition share traces), outputs replicated; with
  `vmap`, each over K stacked states (and their batch rows or metric)."""
  batch = NamedSharding(mesh, P("batch"))
  # Under vmap: the state and its batch rows or metric are per run, the splits shared.
  steps = [(functools.partial(train_steps, sharding=batch), (0, None, 0, 0)),
           (functools.partial(eval_steps, sharding=batch), (0, None)), (observe_step, (0, 0))]

  def over_k(fn, in_axes):
    return lambda graphdef, *args: jax.vmap(functools.partial(fn, graphdef), in_axes=in_axes)(*args)

  jit = functools.partial(jax.jit, static_argnums=0, out_shardings=NamedSharding(mesh, P()))
  return tuple(jit(over_k(fn, in_axes) if vmap else fn) for fn, in_axes in steps)


def chunk_steps(steps: int, at_least: int = 32) -> int:
  """Steps per compiled chunk of an epoch: the smallest divisor of `steps`
  that is at least ``min(steps, at_least)`` (67 of 469), so every chunk has
  one shape (one compile) and the progress bar advances a few times an epoch."""
  return next(d for d in range(min(steps, at_least), steps + 1) if steps % d == 0)


# --- data on the devices -------------------------------------------------------


class OnDevice(NamedTuple):
  """Both splits on the devices (replicated) and the test pass's batch rows."""

  train: dict[str, jax.Array]  # "image" (N, 28, 28) uint8, "label" (N,) int32
  test: dict[str, jax.Array]  # and "idx", "weight": (steps, EVAL_BATCH_FACTOR * batch)
  replicated: NamedSharding  # over the mesh of all devices


def put_on_device(config: Config, ds: dict[str, np.ndarray]) -> OnDevice:
  """The config's subsets of `ds` (`input_pipeline.load`) on the devices, once
  for the whole run: each epoch then sends only its batch rows."""
  _, _, replicated = input_pipeline.make_mesh()
  n, m = config.train_subset, config.test_subset
  train = {"image": ds["train_images"][:n], "label": ds["train_labels"][:n]}
  test = {"image": ds["test_images"][:m], "label": ds["test_labels"][:m]}
  test["idx"], test["weight"] = input_pipeline.batch_indices(
      np.arange(len(test["label"])), EVAL_BATCH_FACTOR * config.batch_size)
  return OnDevice(*(input_pipeline.to_device(split, replicated) for split in (train, test)),
                  replicated)


def epoch_batches(config: Config, epoch: int, train_size: int) -> tuple[np.ndarray, np.ndarray]:
  """The rows and weights of the epoch's batches (`input_pipeline.batch_indices`),
  in the order drawn from ``(config.seed, epoch)``."""
  order = input_pipeline.epoch_order(config.seed, epoch, train_size)
  return input_pipeline.batch_indices(order, config.batch_size)


# --- the loop of K runs -------------------------------------------------------------


def stack(trees: Sequence[Any]) -> Any:
  """The pytrees `trees` (of one structure) stacked on a new leading axis."""
  return jax.tree.map(lambda *x: jnp.stack(x), *trees)


def train_epoch(train: Callable, state, idx: np.ndarray, weight: np.ndarray,
                progress: Callable[[int], Any] = lambda steps: None):
  """``state, metrics = train(state, idx, weight)`` over the epoch's chunks of
  ``(K, steps, batch)`` rows, each metric ``(K, steps)``; returns the state
  and each metric ``(steps, K)`` as NumPy.

  One chunk is in flight while the previous one's metrics come back;
  `progress` is told the steps of each finished chunk. The epoch stops at
  a chunk where no run's loss is finite.
  """
  size = chunk_steps(idx.shape[1])
  outs, pending = [], []
  for c in range(0, idx.shape[1], size):
    state, metrics = train(state, idx[:, c:c + size], weight[:, c:c + size])
    pending.append(metrics)
    if len(pending) > 1:
      outs.append(input_pipeline.host(pending.pop(0)))
      progress(size)
      if not np.isfinite(outs[-1]["loss_sum"]).any():
        break
  outs.extend(input_pipeline.host(m) for m in pending)
  progress(size)
  return state, {k: np.concatenate([o[k] for o in outs], axis=1).T for k in outs[0]}


def fit(config: Config, graphdef, states: list, runs: Sequence[reporting.Run], data: OnDevice,
        epochs: range, *, plateau: bool = False, vmap: bool = False,
        offsets: Sequence[int] | None = None, stop: Callable[[], bool] | None = None) -> list:
  """The epoch loop of K runs trained together; returns their final states.

  The K `states` train apart, each by the one jitted chunk, from K threads
  when K > 1 (on a CPU they fill each other's idle cores; each run is bit for
  bit as alone), or with `vmap` stacked, by one program. Run k trains on the
  batches of epoch ``epoch + offsets[k]``; a run whose training loss is not
  finite is marked diverged and writes nothing more. The loop ends after
  `epochs`, when every run has diverged, or when `stop` (asked after each
  epoch's checkpoints) returns True.
  """
  train_chunk, evaluate_all, observe = jitted_steps(data.replicated.mesh, vmap)
  per_state = (lambda x: [x]) if vmap else list  # the K runs' rows or values, by state
  joined = (lambda outs: outs[0]) if vmap else stack  # the states' outputs, K stacked
  member = lambda state, k: jax.tree.map(lambda x: x[k], state[0]) if vmap else state[k]
  state = [stack(states)] if vmap else list(states)
  offsets = offsets or [0] * len(runs)
  pool = concurrent.futures.ThreadPoolExecutor(len(state))

  def each(fn, state, *per_run):  # fn on each state, from the pool's threads when several
    calls = list(zip(state, *map(per_state, per_run)))
    if len(calls) == 1:
      return [fn(*calls[0])]  # asynchronous: the epoch loop waits
    return list(pool.map(lambda args: jax.block_until_ready(fn(*args)), calls))

  def chunk(s, idx, weight):  # a state's batch rows to the devices, its chunk of steps
    rows = input_pipeline.to_device({"idx": idx, "weight": weight}, data.replicated)
    return train_chunk(graphdef, s, data.train, rows["idx"], rows["weight"])

  def train(state, idx, weight):
    outs = each(chunk, state, idx, weight)
    return [s for s, _ in outs], joined([m for _, m in outs])

  with pool:
    for epoch in epochs:
      t0 = time.perf_counter()
      idx, weight = (np.stack(a) for a in zip(*(
          epoch_batches(config, epoch + o, len(data.train["label"])) for o in offsets)))
      with tqdm.tqdm(total=idx.shape[1], desc=f"{runs[0].prefix}Epoch {epoch + 1}", leave=False,
                     file=sys.stdout, dynamic_ncols=True,
                     disable=not config.progress or jax.process_index() > 0) as bar:
        state, tr = train_epoch(train, state, idx, weight, bar.update)
      te = input_pipeline.host(joined(each(lambda s: evaluate_all(graphdef, s, data.test), state)))
      if plateau:
        accuracy = jnp.asarray(te["correct"] / te["count"], jnp.float32)
        state = each(lambda s, v: observe(graphdef, s, v), state, accuracy)
      seconds = time.perf_counter() - t0
      for k, run in enumerate(runs):
        run.add(epoch + offsets[k] + 1, {key: v[:, k] for key, v in tr.items()},
                {key: v[k] for key, v in te.items()}, seconds, lambda k=k: member(state, k))
      if all(r.diverged for r in runs):
        break
      if stop is not None and stop() and epoch + 1 < epochs.stop:
        for r in runs:
          r.log(f"Stopped after epoch {epoch + 1}; --resume continues from its checkpoint")
        break
  return [member(state, k) for k in range(len(runs))]


class Result(NamedTuple):
  """What `train_and_evaluate` returns."""

  state: nnx.State  # of (model, optimizer), as `nnx.split((model, optimizer))` gives
  history: list[dict[str, Any]]  # one row per epoch, as in metrics.json
  diverged: int | None = None  # the epoch whose loss was not finite, if any
  failure: str = ""  # the line that says so


def record(config: Config, plan: schedules.Plan, spe: int, data: OnDevice) -> dict[str, Any]:
  """A run's settings as its `reporting.Run` saves them, with no epoch yet."""
  return {"config": default.trajectory(config) | {"epochs": config.epochs},
          "schedule": plan.schedule.to_dict(), "plateau": plan.plateau, "steps_per_epoch": spe,
          "train_size": len(data.train["label"]), "test_size": len(data.test["label"]),
          "devices": [str(d) for d in jax.devices()], "history": []}


def train_and_evaluate(config: Config, workdir: str | pathlib.Path, *,
                       transforms: dict[Any, optax.GradientTransformation] | None = None,
                       name: str | None = None, stop: Callable[[], bool] | None = None) -> Result:
  """Trains LeNet under `config`, its outputs in `workdir` (`reporting.Run`).

  Args:
    config: the run's settings (checked by `check_config`).
    workdir: written to before the data is loaded.
    transforms: see `create_train_state`.
    name: printed before each of the run's lines, for runs sharing the terminal.
    stop: asked after each epoch's checkpoint; True ends the run there.

  Raises:
    reporting.OutputError: if `workdir` cannot be written.
    reporting.ResumeError: if ``config.resume`` finds no checkpoint of these settings.
    input_pipeline.DataError: if the data cannot be found or prepared.
  """
  run = reporting.Run(workdir, name=name)
  data = put_on_device(config, input_pipeline.load(config.data_dir))
  run.log(f"JAX {jax.__version__} on {jax.device_count()} {jax.default_backend()} device(s) "
          f"({jax.process_count()} process(es)): {', '.join(map(str, jax.devices()))}")
  spe = steps_per_epoch(config, len(data.train["label"]))
  plan = schedules.make_plan(config, spe)
  graphdef, state = create_train_state(create_model(config), config, plan, transforms)
  with run:
    run.start(state, record(config, plan, spe, data), resume=config.resume)
    state = fit(config, graphdef, [jax.device_put(run.state, data.replicated)], [run], data,
                range(len(run.history), config.epochs), plateau=plan.plateau is not None,
                stop=stop)[0]
  if not run.diverged:
    run.finish(config.schedule)
  return Result(state, run.history, run.diverged, run.failure)
