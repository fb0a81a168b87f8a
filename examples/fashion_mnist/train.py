"""LeNet on Fashion-MNIST with Flax NNX, under an lrjax learning-rate schedule.

The model, one jitted train step, one jitted eval step and the loop
`train_and_evaluate(config, workdir)`, as in Flax's own examples. The schedule
is a pytree argument of the train step (so the step compiles once per run, and
a stack of schedules could be `jax.vmap`-ed through it), and the step returns
the rate it actually applied. Batches are sharded over a 1-D mesh of all
devices; parameters and optimizer state are replicated.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import functools
import json
import math
import pathlib
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec as P

import lrjax

import data as data_lib

# How many times each jitted function has been traced in this process: the
# tests check that a run traces its train step exactly once.
TRACES: collections.Counter[str] = collections.Counter()

EVAL_BATCH_FACTOR = 4  # eval batches are this many train batches


class ResumeError(ValueError):
  """``--resume`` met a checkpoint made with other settings."""


@dataclasses.dataclass(frozen=True)
class Config:
  """One training run. Defaults are those of the reference experiment."""

  schedule: str | dict[str, Any] = "cosine"  # a name in SCHEDULES or an lrjax dict
  epochs: int = 30
  batch_size: int = 128
  learning_rate: float = 0.3
  seed: int = 0
  data_dir: str | None = None  # None: data.default_data_dir()
  train_subset: int | None = None  # use the first N training images
  test_subset: int | None = None  # use the first N test images
  resume: bool = False
  progress: bool = False


# --- schedules ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Plan:
  """What drives the rate: a step-indexed schedule, and plateau settings or None."""

  schedule: lrjax.Schedule
  plateau: dict[str, Any] | None = None


def _keras_plateau(lr: float) -> dict[str, Any]:
  # Keras ReduceLROnPlateau(monitor="val_accuracy", mode="max", factor=0.5,
  # patience=3, min_delta=1e-4, min_lr=1e-5). Keras reduces once `patience`
  # epochs in a row failed to improve, PyTorch (and lrjax) once more than
  # `patience` did: Keras' 3 is lrjax's 2. Keras' min_delta is absolute and its
  # min_lr a rate, lrjax's min_scale a factor of the schedule's rate.
  return dict(factor=0.5, patience=2, mode="max", threshold=1e-4,
              threshold_mode="abs", min_scale=1e-5 / lr)


# name -> (base rate, epochs, steps per epoch) -> Plan. Steps are optimizer
# updates; the reference's epoch-indexed schedules go through `per_epoch`.
SCHEDULES: dict[str, Callable[[float, int, int], Plan]] = {
    # The reference experiment ("Dive into Deep Learning", 12.11):
    "none": lambda lr, epochs, spe: Plan(lrjax.constant(lr)),
    "sqrt": lambda lr, epochs, spe: Plan(
        lrjax.per_epoch(lrjax.inverse_sqrt(0.1), steps_per_epoch=spe)),
    "multistep": lambda lr, epochs, spe: Plan(lrjax.per_epoch(
        lrjax.multistep(lr, milestones=[15, 30], gamma=0.5), steps_per_epoch=spe)),
    "cosine": lambda lr, epochs, spe: Plan(lrjax.per_epoch(
        lrjax.cosine_decay(lr, decay_steps=20, end_value=0.01), steps_per_epoch=spe)),
    "plateau": lambda lr, epochs, spe: Plan(lrjax.constant(lr), _keras_plateau(lr)),
    # Step-wise schedules:
    "warmup-cosine": lambda lr, epochs, spe: Plan(lrjax.cosine_decay(
        lr, decay_steps=20 * spe, end_value=0.01, warmup_steps=5 * spe)),
    "exponential": lambda lr, epochs, spe: Plan(
        lrjax.exponential_decay(lr, decay_steps=spe, decay_rate=0.9)),
    "one-cycle": lambda lr, epochs, spe: Plan(
        lrjax.one_cycle(max_value=lr, total_steps=epochs * spe)),
    "wsd": lambda lr, epochs, spe: _wsd(lr, epochs * spe, spe),
}


def _wsd(lr: float, total: int, spe: int) -> Plan:
  """Warmup for an epoch (at most a tenth of the run), flat, then a "1-sqrt"
  cooldown to 0 over the last fifth of the run."""
  warmup, decay = min(spe, total // 10), max(1, total // 5)
  return Plan(lrjax.warmup_stable_decay(
      peak_value=lr, warmup_steps=warmup, stable_steps=total - warmup - decay,
      decay_steps=decay, decay_shape="1-sqrt"))


def make_plan(config: Config, steps_per_epoch: int) -> Plan:
  """The config's schedule as a `Plan`.

  Raises:
    ValueError: if the name is unknown or the dict is not an lrjax schedule.
  """
  s = config.schedule
  if isinstance(s, dict):
    return Plan(lrjax.from_dict(s))
  if s not in SCHEDULES:
    raise ValueError(f"unknown schedule {s!r}; known: {', '.join(SCHEDULES)}, or an lrjax JSON dict")
  return SCHEDULES[s](config.learning_rate, config.epochs, steps_per_epoch)


def schedule_label(schedule: str | dict[str, Any]) -> str:
  """A name for plots and directories: the schedule's name or lrjax type."""
  return schedule if isinstance(schedule, str) else str(schedule.get("type", "custom"))


def check_config(config: Config) -> None:
  """Raises ValueError, naming the setting, for any value the run cannot use."""
  def positive_int(name: str, x: Any) -> None:
    if not isinstance(x, int) or isinstance(x, bool) or x < 1:
      raise ValueError(f"{name} must be an integer >= 1, got {x!r}")

  positive_int("epochs", config.epochs)
  positive_int("batch_size", config.batch_size)
  for name in ("train_subset", "test_subset"):
    if getattr(config, name) is not None:
      positive_int(name, getattr(config, name))
  if not (isinstance(config.learning_rate, (int, float)) and math.isfinite(config.learning_rate)
          and config.learning_rate > 0):
    raise ValueError(f"learning_rate must be a finite number > 0, got {config.learning_rate!r}")
  n = jax.device_count()
  if config.batch_size % n:
    raise ValueError(f"batch_size must be a multiple of the {n} devices, got {config.batch_size}")
  train_size = min(config.train_subset or data_lib.TRAIN_SIZE, data_lib.TRAIN_SIZE)
  make_plan(config, steps_per_epoch=-(-train_size // config.batch_size))


# --- model -------------------------------------------------------------------


def _torch_init(fan_in: int) -> dict[str, Any]:
  """PyTorch's default Conv2d/Linear init: weights and biases U(±1/sqrt(fan_in))."""
  bound = 1.0 / math.sqrt(fan_in)
  return dict(
      kernel_init=nnx.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform"),
      bias_init=lambda key, shape, dtype=jnp.float32: jax.random.uniform(
          key, shape, dtype, -bound, bound),
  )


# --- model: activations inside are laid out (channels, height, width, batch):
# the batch of 128 is the contiguous axis that the CPU's vector instructions
# run along, and each 5x5 convolution is one matrix product with a long,
# contiguous side. See `conv_relu_pool`.


def _pool_windows(x):
  """The four elements of each 2x2 window of x (C, H, W, B), as four arrays."""
  return x[:, 0::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 0::2], x[:, 1::2, 1::2]


@jax.custom_vjp
def max_pool_2x2(x: jax.Array) -> jax.Array:
  """2x2 max-pooling with stride 2 over axes 1 and 2 of x (C, H, W, B).

  The gradient goes to the first maximum of each window (as in PyTorch and
  `lax.reduce_window`), computed by one fused elementwise pass.
  """
  a, b, c, d = _pool_windows(x)
  return jnp.maximum(jnp.maximum(a, b), jnp.maximum(c, d))


def _max_pool_fwd(x):
  y = max_pool_2x2(x)
  return y, (x, y)


def _max_pool_bwd(res, g):
  x, y = res
  a, b, c, d = _pool_windows(x)
  first_a = a == y
  first_b = ~first_a & (b == y)
  first_c = ~(first_a | first_b) & (c == y)
  first_d = ~(first_a | first_b | first_c)
  zero = jnp.zeros_like(g)
  ga, gb, gc, gd = (jnp.where(m, g, zero) for m in (first_a, first_b, first_c, first_d))
  rows = jnp.stack([jnp.stack([ga, gb], axis=3), jnp.stack([gc, gd], axis=3)], axis=2)
  return (rows.reshape(x.shape),)  # (C, H/2, 2, W/2, 2, B) -> (C, H, W, B)


max_pool_2x2.defvjp(_max_pool_fwd, _max_pool_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def conv_patches(x: jax.Array, kh: int, kw: int) -> jax.Array:
  """The (kh, kw, C, oh, ow, B) patches of x (C, H, W, B) for a VALID convolution.

  Cut by kw shifted slices along the width, then kh along the height. The
  gradient adds each patch's cotangent back in place (`.at[].add`), about 2x
  faster on a CPU than the transpose of the slices that autodiff builds.
  """
  c, h, w, b = x.shape
  oh, ow = h - kh + 1, w - kw + 1
  cols = jnp.stack([x[:, :, j:j + ow] for j in range(kw)])     # (kw, C, H, ow, B)
  return jnp.stack([cols[:, :, i:i + oh] for i in range(kh)])  # (kh, kw, C, oh, ow, B)


def _conv_patches_fwd(x, kh, kw):
  return conv_patches(x, kh, kw), x.shape


def _conv_patches_bwd(kh, kw, shape, g):
  oh, ow = g.shape[3], g.shape[4]
  dx = jnp.zeros(shape, g.dtype)
  for i in range(kh):
    for j in range(kw):
      dx = dx.at[:, i:i + oh, j:j + ow].add(g[i, j])
  return (dx,)


conv_patches.defvjp(_conv_patches_fwd, _conv_patches_bwd)


def conv_relu_pool(x: jax.Array, kernel: jax.Array, bias: jax.Array, padding: int) -> jax.Array:
  """``max_pool_2x2(relu(conv(x, kernel) + bias))`` for x (C, H, W, B).

  `kernel` is (kh, kw, C, O), as `nnx.Conv` holds it. The convolution is one
  matrix product ``kernel (O, kh*kw*C) @ patches (kh*kw*C, oh*ow*B)``, the
  patches cut from the padded input by kh + kw shifted slices (first along
  the width, then along the height); pooling comes before the bias and the
  ReLU, which gives the same values (both are monotone and the bias is one
  number per channel) on a 4x smaller array.
  """
  kh, kw, cin, cout = kernel.shape
  p = padding
  x = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
  patches = conv_patches(x, kh, kw)  # (kh, kw, C, oh, ow, B)
  _, _, _, oh, ow, b = patches.shape
  y = kernel.reshape(kh * kw * cin, cout).T @ patches.reshape(kh * kw * cin, oh * ow * b)
  y = max_pool_2x2(y.reshape(cout, oh, ow, b))
  return jax.nn.relu(y + bias[:, None, None, None])


class LeNet(nnx.Module):
  """LeNet-5 with ReLU and max-pooling (the "modern" LeNet of D2L).

  The layers are `nnx.Conv` and `nnx.Linear` (their parameters, shapes and
  initialisation); the convolutions and pooling run through `conv_relu_pool`,
  which computes ``max_pool(relu(conv(x)))`` exactly as
  ``nnx.max_pool(nnx.relu(self.conv1(x)), (2, 2), strides=(2, 2))`` does,
  in a layout about 2x faster on a CPU.
  """

  def __init__(self, *, rngs: nnx.Rngs):
    self.conv1 = nnx.Conv(1, 6, (5, 5), padding=2, rngs=rngs, **_torch_init(25))
    self.conv2 = nnx.Conv(6, 16, (5, 5), padding="VALID", rngs=rngs, **_torch_init(150))
    self.fc1 = nnx.Linear(16 * 5 * 5, 120, rngs=rngs, **_torch_init(400))
    self.fc2 = nnx.Linear(120, 84, rngs=rngs, **_torch_init(120))
    self.fc3 = nnx.Linear(84, 10, rngs=rngs, **_torch_init(84))

  def __call__(self, x: jax.Array) -> jax.Array:
    """Logits (B, 10) for images (B, 28, 28, 1) scaled to [-1, 1]."""
    x = jnp.transpose(x, (3, 1, 2, 0))  # (1, 28, 28, B)
    x = conv_relu_pool(x, self.conv1.kernel[...], self.conv1.bias[...], padding=2)  # (6, 14, 14, B)
    x = conv_relu_pool(x, self.conv2.kernel[...], self.conv2.bias[...], padding=0)  # (16, 5, 5, B)
    x = jnp.transpose(x, (3, 1, 2, 0)).reshape(x.shape[-1], -1)  # (B, 400), as NHWC flattens
    x = nnx.relu(self.fc1(x))
    x = nnx.relu(self.fc2(x))
    return self.fc3(x)


def sgd_with_rate_argument() -> optax.GradientTransformationExtraArgs:
  """Plain SGD whose rate is passed to each update: ``-learning_rate * grads``.

  ``optimizer.update(model, grads, learning_rate=lr)`` applies exactly `lr`,
  so the train step logs the rate it used, not a second evaluation of it.
  """

  def init_fn(params):
    del params
    return optax.EmptyState()

  def update_fn(updates, state, params=None, *, learning_rate, **extra_args):
    del params, extra_args
    updates = jax.tree.map(lambda g: -jnp.asarray(learning_rate, g.dtype) * g, updates)
    return updates, state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def make_optimizer(model: LeNet, plan: Plan) -> nnx.Optimizer:
  """SGD at the schedule's rate, followed by the plateau transform if planned."""
  tx = sgd_with_rate_argument()
  if plan.plateau is not None:
    tx = optax.chain(tx, lrjax.reduce_on_plateau(**plan.plateau))
  return nnx.Optimizer(model, tx, wrt=nnx.Param)


# --- steps -------------------------------------------------------------------
# Pure functions of (graphdef, state, schedule, batch): `nnx.merge` rebuilds the
# model and optimizer inside the trace, `nnx.state` returns their new state.


def _loss(model: LeNet, batch: dict[str, jax.Array]) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Mean cross-entropy over the real (weight 1) examples of the batch."""
  images = (batch["image"].astype(jnp.float32) / 255.0 - 0.5) / 0.5
  logits = model(images[..., None])
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
  w = batch["weight"]
  count = jnp.sum(w)
  correct = jnp.sum(w * (jnp.argmax(logits, -1) == batch["label"]).astype(jnp.float32))
  stats = {"loss_sum": jnp.sum(w * losses), "correct": correct, "count": count}
  return stats["loss_sum"] / jnp.maximum(count, 1.0), stats


def _has_plateau(opt: nnx.Optimizer) -> bool:
  is_plateau = lambda x: isinstance(x, lrjax.ReduceOnPlateauState)
  return any(map(is_plateau, jax.tree.leaves(opt.opt_state, is_leaf=is_plateau)))


def train_step(graphdef, state, schedule: lrjax.Schedule, batch):
  """One SGD update; returns the new state, the batch's metrics and the rate used.

  The rate used is the schedule at the optimizer's step, times the plateau
  transform's scale when there is one (the transform applies that scale).
  """
  TRACES["train_step"] += 1
  model, opt = nnx.merge(graphdef, state)
  lr = schedule(opt.step[...])
  used = lr * lrjax.plateau_scale(opt.opt_state) if _has_plateau(opt) else lr
  grads, stats = nnx.grad(_loss, has_aux=True)(model, batch)
  opt.update(model, grads, learning_rate=lr)
  return nnx.state((model, opt)), dict(stats, lr=used)


def eval_step(graphdef, state, batch):
  """Summed loss, correct count and example count on one batch."""
  TRACES["eval_step"] += 1
  model, _ = nnx.merge(graphdef, state)
  return _loss(model, batch)[1]


def observe_step(graphdef, state, value):
  """Feeds one epoch's monitored metric to the plateau transform."""
  TRACES["observe_step"] += 1
  model, opt = nnx.merge(graphdef, state)
  opt.opt_state = lrjax.observe_plateau(opt.opt_state, value)
  return nnx.state((model, opt))


# --- data on devices ---------------------------------------------------------


def batches(images, labels, batch_size: int, order: np.ndarray) -> Iterator[dict[str, np.ndarray]]:
  """Full-size batches in `order`; the last is padded with weight-0 examples.

  Every example is used once, every batch has the same shape (one compile),
  and padded examples do not count in the loss, its gradient or the metrics.
  """
  n = len(order)
  steps = -(-n // batch_size)
  pad = steps * batch_size - n
  idx = np.concatenate([order, order[:pad]]) if pad <= n else np.resize(order, n + pad)
  weight = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
  for i in range(steps):
    sl = idx[i * batch_size:(i + 1) * batch_size]
    yield {"image": images[sl], "label": labels[sl], "weight": weight[i * batch_size:(i + 1) * batch_size]}


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
  """The data order of an epoch: a function of (seed, epoch) only, so resumable."""
  return np.random.default_rng([seed, epoch]).permutation(n)


def to_device(batch: dict[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
  """A global batch, sharded on its first axis.

  Every process holds the whole batch (same seed, same order) and hands over
  the rows its own devices hold, wherever the mesh put them.
  """

  def put(x):
    rows = [idx[0] for idx in sharding.addressable_devices_indices_map(x.shape).values()]
    lo = min(r.start or 0 for r in rows)
    hi = max(len(x) if r.stop is None else r.stop for r in rows)
    return jax.make_array_from_process_local_data(sharding, x[lo:hi], x.shape)

  return {key: put(x) for key, x in batch.items()}


def prefetch(it: Iterable[dict[str, np.ndarray]], sharding: NamedSharding, size: int = 2):
  """Puts `size` batches on device ahead of the one being consumed."""
  queue: collections.deque = collections.deque()
  for batch in it:
    queue.append(to_device(batch, sharding))
    if len(queue) > size:
      yield queue.popleft()
  while queue:
    yield queue.popleft()


def _host(tree):
  """A replicated device pytree as NumPy (also when other hosts hold copies)."""
  return jax.tree.map(lambda a: np.asarray(a.addressable_data(0)), tree)


# --- checkpoints and outputs -------------------------------------------------


class Checkpoints:
  """Orbax checkpoints of (model, optimizer) state and a JSON record per epoch."""

  def __init__(self, directory: pathlib.Path):
    self.manager = ocp.CheckpointManager(
        directory.absolute(), options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True))

  def latest(self) -> int | None:
    return self.manager.latest_step()

  def save(self, epoch: int, state, record: dict[str, Any]) -> None:
    self.manager.save(epoch, args=ocp.args.Composite(
        state=ocp.args.StandardSave(nnx.to_pure_dict(state)),
        record=ocp.args.JsonSave(record)))

  def restore(self, state):
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, nnx.to_pure_dict(state))
    out = self.manager.restore(self.latest(), args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), record=ocp.args.JsonRestore()))
    nnx.replace_by_pure_dict(state, out["state"])
    return state, out["record"]

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()


COLUMNS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "lr_last", "time")


def format_row(row: dict[str, Any]) -> str:
  """The reference's per-epoch line, plus the epoch's wall time."""
  return (f"Epoch {row['epoch']}, Train Loss: {row['train_loss']:.4f}, "
          f"Test Loss: {row['test_loss']:.4f}, Test Acc: {row['test_acc']:.2f}, "
          f"LR: {row['lr']:.4g}, Time: {row['time']:.1f}s")


def write_metrics(workdir: pathlib.Path, record: dict[str, Any]) -> None:
  """``metrics.json`` (config, schedule, history) and ``metrics.csv`` (history)."""
  (workdir / "metrics.json").write_text(json.dumps(record, indent=1) + "\n")
  with open(workdir / "metrics.csv", "w", newline="") as f:
    w = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
    w.writeheader()
    w.writerows(record["history"])


def plot(path: pathlib.Path, runs: dict[str, list[dict[str, Any]]]) -> None:
  """Train loss, test loss, test accuracy and rate against epoch, one curve per run."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
  panels = [("train_loss", "train loss"), ("test_loss", "test loss"),
            ("test_acc", "test accuracy"), ("lr", "learning rate")]
  for (key, title), ax in zip(panels, axes.flat):
    for name, history in runs.items():
      e = np.array([r["epoch"] for r in history], float)
      if key == "lr":  # samples of the rates used, at their place in the epoch
        spe = max(history[0]["lr_curve"][-1][0] + 1, 1)
        x = [r["epoch"] - 1 + i / spe for r in history for i, _ in r["lr_curve"]]
        ax.plot(x, [v for r in history for _, v in r["lr_curve"]], label=name)
      else:
        ax.plot(e, [r[key] for r in history], marker="." if len(e) < 40 else None, label=name)
    ax.set_title(title)
    ax.grid(alpha=0.3)
  for ax in axes[1]:
    ax.set_xlabel("epoch")
  axes[0, 0].legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


# --- the loop ----------------------------------------------------------------


class Result(NamedTuple):
  """What `train_and_evaluate` returns."""

  state: nnx.State  # of (model, optimizer), as `nnx.split((model, optimizer))` gives
  history: list[dict[str, Any]]  # one row per epoch, as in metrics.json


def train_and_evaluate(config: Config, workdir: str | pathlib.Path) -> Result:
  """Trains LeNet under `config` in `workdir`.

  Writes ``metrics.json``, ``metrics.csv``, ``plot.png`` and ``checkpoints/``
  to `workdir`, and prints one line per epoch.

  Returns:
    The final state of (model, optimizer) and the per-epoch history.

  Raises:
    ValueError: if a setting of `config` is unusable (see `check_config`).
    ResumeError: if `config.resume` meets a checkpoint made with other settings.
    data.DataError: if the data cannot be found or prepared.
  """
  check_config(config)
  workdir = pathlib.Path(workdir)
  main_process = jax.process_index() == 0
  log = print if main_process else (lambda *a, **k: None)
  ds = data_lib.load(config.data_dir)
  train_x, train_y = ds["train_images"][:config.train_subset], ds["train_labels"][:config.train_subset]
  test_x, test_y = ds["test_images"][:config.test_subset], ds["test_labels"][:config.test_subset]
  steps_per_epoch = -(-len(train_x) // config.batch_size)

  devices = jax.devices()
  mesh = jax.make_mesh((len(devices),), ("batch",), axis_types=(jax.sharding.AxisType.Auto,))
  data_sharding, replicated = NamedSharding(mesh, P("batch")), NamedSharding(mesh, P())
  log(f"JAX {jax.__version__} on {len(devices)} {devices[0].platform} device(s) "
      f"({jax.process_count()} process(es)): {', '.join(str(d) for d in devices)}")

  plan = make_plan(config, steps_per_epoch)
  model = LeNet(rngs=nnx.Rngs(config.seed))
  graphdef, state = nnx.split((model, make_optimizer(model, plan)))
  state = jax.device_put(state, replicated)
  schedule = jax.device_put(plan.schedule, replicated)
  train = jax.jit(train_step, static_argnums=0, out_shardings=replicated)
  evaluate = jax.jit(eval_step, static_argnums=0, out_shardings=replicated)
  observe = jax.jit(observe_step, static_argnums=0, out_shardings=replicated)

  record = {
      "config": dataclasses.asdict(config) | {"resume": False, "progress": False},
      "schedule": plan.schedule.to_dict(), "plateau": plan.plateau,
      "steps_per_epoch": steps_per_epoch, "train_size": len(train_x), "test_size": len(test_x),
      "devices": [str(d) for d in devices], "history": [],
  }
  ckpt_dir = workdir / "checkpoints"
  if main_process:
    workdir.mkdir(parents=True, exist_ok=True)
    if not config.resume and ckpt_dir.exists():
      shutil.rmtree(ckpt_dir)  # a fresh run replaces an old one's checkpoints
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices("workdir ready")
  ckpts = Checkpoints(ckpt_dir)
  try:
    if config.resume and ckpts.latest() is not None:
      state, saved = ckpts.restore(state)
      _check_same_run(saved, record, workdir)
      record["history"] = saved["history"]
      log(f"Resuming {workdir} after epoch {ckpts.latest()}")

    test_batches = list(prefetch(batches(test_x, test_y, EVAL_BATCH_FACTOR * config.batch_size,
                                         np.arange(len(test_x))), data_sharding))
    for epoch in range(len(record["history"]), config.epochs):
      t0 = time.perf_counter()
      order = epoch_order(config.seed, epoch, len(train_x))
      steps = prefetch(batches(train_x, train_y, config.batch_size, order), data_sharding)
      if config.progress and main_process:
        from tqdm import tqdm  # pylint: disable=import-outside-toplevel
        steps = tqdm(steps, total=steps_per_epoch, desc=f"Epoch {epoch + 1}", leave=False,
                     file=sys.stdout, dynamic_ncols=True)
      outs = []
      for batch in steps:
        state, m = train(graphdef, state, schedule, batch)
        outs.append(m)
        if len(outs) > 2:  # at most two steps in flight: an honest progress bar
          outs[-3]["lr"].block_until_ready()
      tr = {k: np.stack([o[k] for o in _host(outs)]) for k in outs[0]}
      te = _host(_sum([evaluate(graphdef, state, b) for b in test_batches]))
      row = {
          "epoch": epoch + 1,
          "train_loss": float(tr["loss_sum"].sum() / tr["count"].sum()),
          "train_acc": float(tr["correct"].sum() / tr["count"].sum()),
          "test_loss": float(te["loss_sum"] / te["count"]),
          "test_acc": float(te["correct"] / te["count"]),
          "lr": float(tr["lr"][0]), "lr_last": float(tr["lr"][-1]),
      }
      if plan.plateau is not None:
        state = observe(graphdef, state, jnp.float32(row["test_acc"]))
      row["time"] = time.perf_counter() - t0
      # A few of the rates used inside the epoch, for the plot.
      at = np.unique(np.linspace(0, steps_per_epoch - 1, min(steps_per_epoch, 17)).round().astype(int))
      row["lr_curve"] = [[int(i), float(tr["lr"][i])] for i in at]
      record["history"].append(row)
      log(format_row(row), flush=True)
      if main_process:
        write_metrics(workdir, record)
      ckpts.save(epoch + 1, state, record)
  finally:
    ckpts.close()  # waits for the last save, also after an interrupt
  if main_process:
    write_metrics(workdir, record)
    plot(workdir / "plot.png", {schedule_label(config.schedule): record["history"]})
  return Result(state, record["history"])


def _sum(trees: list[Any]) -> Any:
  return jax.tree.map(lambda *x: jnp.sum(jnp.stack(x), axis=0), *trees)


def _check_same_run(saved: dict[str, Any], new: dict[str, Any], workdir: pathlib.Path) -> None:
  """Resuming is only sound with the same data, model, seed and schedule."""
  for key in ("schedule", "plateau", "steps_per_epoch", "train_size", "test_size"):
    if saved[key] != new[key]:
      raise ResumeError(f"--resume: {workdir} holds a run with another {key} "
                        f"({saved[key]} != {new[key]}); use another --workdir")
  for key in ("batch_size", "seed", "learning_rate", "schedule"):
    if saved["config"][key] != new["config"][key]:
      raise ResumeError(f"--resume: {workdir} holds a run with another {key} "
                        f"({saved['config'][key]!r} != {new['config'][key]!r}); use another --workdir")


def compare(config: Config, schedules: dict[str, str | dict[str, Any]],
            workdir: str | pathlib.Path) -> list[dict[str, Any]]:
  """Runs `config` under each schedule and writes one table and one plot.

  Args:
    config: the settings shared by all runs.
    schedules: run name -> schedule (a name in `SCHEDULES` or an lrjax dict);
      each run works in ``workdir/<run name>``.
    workdir: where ``comparison.csv``, ``comparison.md`` and
      ``comparison.png`` go.

  Returns:
    The table's rows; the table is also printed.
  """
  workdir = pathlib.Path(workdir)
  runs, rows = {}, []
  for name, s in schedules.items():
    print(f"== {name} ==", flush=True)
    history = train_and_evaluate(dataclasses.replace(config, schedule=s), workdir / name).history
    runs[name] = history
    rows.append({"schedule": name, **summarize(history),
                 "time_s": sum(r["time"] for r in history)})
  if jax.process_index() == 0:
    with open(workdir / "comparison.csv", "w", newline="") as f:
      w = csv.DictWriter(f, rows[0])
      w.writeheader()
      w.writerows(rows)
    table = results_table(rows)
    (workdir / "comparison.md").write_text(table + "\n")
    plot(workdir / "comparison.png", runs)
    print(table)
  return rows


def summarize(history: list[dict[str, Any]]) -> dict[str, Any]:
  """A run's best test accuracy (and its epoch) and its final metrics."""
  best = max(history, key=lambda r: r["test_acc"])
  return {"best_test_acc": best["test_acc"], "best_epoch": best["epoch"],
          "final_test_acc": history[-1]["test_acc"], "final_train_loss": history[-1]["train_loss"],
          "final_test_loss": history[-1]["test_loss"]}


def results_table(rows: list[dict[str, Any]], name: str = "schedule") -> str:
  """A Markdown table of `summarize` rows named by `rows[i][name]`, with the
  time column where the rows have ``time_s``."""
  timed = "time_s" in rows[0]
  lines = [f"| {name} | best test acc (epoch) | final test acc | final train loss | final test loss |"
           + (" time (s) |" if timed else ""),
           "|---|---|---|---|---|" + ("---|" if timed else "")]
  for r in rows:
    lines.append(f"| {r[name]} | {r['best_test_acc']:.4f} ({r['best_epoch']}) | "
                 f"{r['final_test_acc']:.4f} | {r['final_train_loss']:.4f} | "
                 f"{r['final_test_loss']:.4f} |" + (f" {r['time_s']:.0f} |" if timed else ""))
  return "\n".join(lines)
