"""What a run leaves behind: checkpoints, metrics files, TensorBoard events, plots, tables.

`epoch_row` turns an epoch's per-step metrics (as the train step returns
them) and its test sums into the row that is printed, kept in the history,
written to ``metrics.json``/``metrics.csv``, and logged to TensorBoard.
"""

from __future__ import annotations

import csv
import json
import math
import pathlib
import threading
import weakref
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx
from jax.experimental import multihost_utils

import lrjax


class ResumeError(ValueError):
  """``--resume`` met a checkpoint made with other settings."""


# orbax keeps one operation id per process for the signals between a save and
# its background threads, so two checkpoint managers saving at the same time
# (the runs of `sweep.compare` with jobs > 1) can take each other's signals.
# Every manager call below therefore holds this lock and first waits for
# every live manager's save in flight: one orbax operation at a time.
_ORBAX = threading.Lock()
_MANAGERS: weakref.WeakSet = weakref.WeakSet()


def _one_at_a_time() -> None:
  for manager in list(_MANAGERS):
    manager.wait_until_finished()


class Checkpoints:
  """Orbax checkpoints of (model, optimizer) state and a JSON record per epoch.

  A save runs in the background while the next epoch trains; managers of
  runs in other threads wait for it before their own (see `_ORBAX`).
  """

  def __init__(self, directory: pathlib.Path):
    with _ORBAX:
      _one_at_a_time()
      self.manager = ocp.CheckpointManager(
          directory.absolute(), options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True))
      _MANAGERS.add(self.manager)
    if jax.process_count() > 1:  # every process must go on from the same complete checkpoint
      latest = self.manager.latest_step()
      seen = multihost_utils.process_allgather(np.int32(-1 if latest is None else latest)).tolist()
      if len(set(seen)) > 1:
        raise ResumeError(f"the processes see different checkpoints in {directory} (the latest "
                          f"epoch by process, -1 for none: {seen}); the work directory must be "
                          "one directory that every process sees")

  def latest(self) -> int | None:
    return self.manager.latest_step()

  def save(self, epoch: int, state, record: dict[str, Any]) -> None:
    with _ORBAX:
      _one_at_a_time()
      self.manager.save(epoch, args=ocp.args.Composite(
          state=ocp.args.StandardSave(nnx.to_pure_dict(state)),
          record=ocp.args.JsonSave(record)))

  def restore(self, state):
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, nnx.to_pure_dict(state))
    with _ORBAX:
      _one_at_a_time()
      out = self.manager.restore(self.latest(), args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract), record=ocp.args.JsonRestore()))
    nnx.replace_by_pure_dict(state, out["state"])
    return state, out["record"]

  def close(self) -> None:
    with _ORBAX:
      try:
        self.manager.wait_until_finished()
        self.manager.close()
      finally:
        _MANAGERS.discard(self.manager)


def check_same_run(saved: dict[str, Any], new: dict[str, Any], workdir: pathlib.Path) -> None:
  """Resuming is only sound with the same data, model, seed and schedule."""
  for key in ("schedule", "plateau", "momentum", "steps_per_epoch", "train_size", "test_size"):
    if saved.get(key) != new[key]:
      raise ResumeError(f"--resume: {workdir} holds a run with another {key} "
                        f"({saved.get(key)} != {new[key]}); use another --workdir")
  for key in ("batch_size", "seed", "learning_rate", "momentum", "schedule"):
    if saved["config"].get(key) != new["config"][key]:
      raise ResumeError(f"--resume: {workdir} holds a run with another {key} "
                        f"({saved['config'].get(key)!r} != {new['config'][key]!r}); use another --workdir")


COLUMNS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "lr_last",
           "plateau_scale", "time")
CURVE_POINTS = 17  # rates kept per epoch in the history, for the plot


def epoch_row(epoch: int, train: Mapping[str, np.ndarray], test: Mapping[str, Any],
              seconds: float) -> dict[str, Any]:
  """One epoch's row of the history.

  Args:
    epoch: the epoch, counted from 1.
    train: the train step's metrics, each an array over the epoch's steps:
      ``loss_sum``, ``correct``, ``count``, ``lr`` (the rate the update used)
      and ``plateau_scale``.
    test: the test pass's sums ``loss_sum``, ``correct``, ``count``.
    seconds: the epoch's wall time.

  Returns:
    The mean losses and accuracies, the first and last rates used, the
    plateau scale, the time, and ``lr_curve``: a few (step in epoch, rate)
    pairs for the plot.
  """
  lr = np.asarray(train["lr"])
  steps = len(lr)
  at = np.unique(np.linspace(0, steps - 1, min(steps, CURVE_POINTS)).round().astype(int))
  count = train["count"].sum()
  return {
      "epoch": epoch,
      "train_loss": float(train["loss_sum"].sum() / count),
      "train_acc": float(train["correct"].sum() / count),
      "test_loss": float(test["loss_sum"] / test["count"]),
      "test_acc": float(test["correct"] / test["count"]),
      "lr": float(lr[0]), "lr_last": float(lr[-1]),
      "plateau_scale": float(train["plateau_scale"][0]),
      "time": seconds,
      "lr_curve": [[int(i), float(lr[i])] for i in at],
  }


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


# TensorBoard tag -> history key, one point per epoch.
TENSORBOARD_SCALARS = {
    "train/loss": "train_loss", "train/accuracy": "train_acc",
    "test/loss": "test_loss", "test/accuracy": "test_acc",
    "lr/epoch": "lr", "lr/plateau_scale": "plateau_scale", "time/epoch_s": "time",
}


class TensorBoard:
  """TensorBoard event files in `logdir`: `TENSORBOARD_SCALARS` per epoch
  (at step = epoch), and ``lr/step``, the rate of every update (at its step).

  A fresh run removes the event files an earlier run left in `logdir`, a
  resumed one adds to them; ``tensorboard --logdir DIR`` over a `--compare`
  directory shows its runs side by side.
  """

  def __init__(self, logdir: pathlib.Path, *, fresh: bool):
    from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel
    if fresh:
      for old in logdir.glob("events.out.tfevents.*"):
        old.unlink()
    self.writer = SummaryWriter(str(logdir))

  def write(self, row: dict[str, Any], rates: np.ndarray, first_step: int) -> None:
    """One epoch's `row` and its per-step `rates` (the first at `first_step`)."""
    for tag, key in TENSORBOARD_SCALARS.items():
      self.writer.add_scalar(tag, row[key], row["epoch"])
    for i, rate in enumerate(np.asarray(rates, np.float64)):
      self.writer.add_scalar("lr/step", rate, first_step + i)
    self.writer.flush()

  def close(self) -> None:
    self.writer.close()


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


def write_comparison(workdir: pathlib.Path, rows: list[dict[str, Any]],
                     runs: dict[str, list[dict[str, Any]]]) -> str:
  """``comparison.csv``, ``comparison.md`` and ``comparison.png``; returns the table."""
  with open(workdir / "comparison.csv", "w", newline="") as f:
    w = csv.DictWriter(f, rows[0])
    w.writeheader()
    w.writerows(rows)
  table = results_table(rows)
  (workdir / "comparison.md").write_text(table + "\n")
  plot(workdir / "comparison.png", runs)
  return table


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
