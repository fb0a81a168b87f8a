"""What a run leaves behind: checkpoints, metrics files, TensorBoard events, plots, tables.

A `Run` is one run's outputs: `Run.add` turns an epoch's per-step metrics
and test sums into its row (`epoch_row`), prints it, and writes it to
``metrics.json``/``metrics.csv`` and TensorBoard (`METRICS` names each
metric's tag and console format), then saves the checkpoint. Every file is
written whole or not at all (a temporary file, then a rename); a write that
fails is an `OutputError` naming the path and the cause.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
import pathlib
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx
from jax.experimental import multihost_utils

import lrjax



class ResumeError(ValueError):
  """``--resume`` met a checkpoint made with other settings, or none that restores."""


class OutputError(RuntimeError):
  """An output cannot be written (a full disk, a read-only filesystem, a quota)."""


def _cause(e: BaseException) -> str:
  """The OS error in `e`'s chain (or named in its text, as TensorStore's
  ``os_error_code='28'``), else `e`'s first line."""
  seen = e
  while seen is not None:
    if isinstance(seen, OSError) and seen.strerror:
      return seen.strerror
    seen = seen.__cause__ or seen.__context__
  code = re.search(r"os_error_code='(\d+)'", str(e))
  return os.strerror(int(code.group(1))) if code else (
      str(e).strip().splitlines() or [type(e).__name__])[0][:200]


def check_writable(workdir: pathlib.Path) -> None:
  """Creates `workdir` and writes a file in it.

  Raises:
    OutputError: naming the path and the OS error, if either fails.
  """
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    probe = workdir / f".write-test-{os.getpid()}"  # processes sharing the directory
    probe.write_text("ok")
    probe.unlink()
  except OSError as e:
    raise OutputError(f"cannot write to {workdir}: {_cause(e)}") from None


def write_atomic(path: pathlib.Path, write: Callable[[pathlib.Path], Any]) -> None:
  """``write(tmp)``, then `tmp` renamed to `path`: `path` is whole or as it was.

  Raises:
    OutputError: naming `path` and the cause, if the write fails.
  """
  tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
  try:
    write(tmp)
    tmp.replace(path)
  except OSError as e:
    tmp.unlink(missing_ok=True)
    raise OutputError(f"cannot write {path}: {_cause(e)}") from None


def write_text(path: pathlib.Path, text: str) -> None:
  write_atomic(path, lambda tmp: tmp.write_text(text))


def write_csv(path: pathlib.Path, rows: list[dict[str, Any]], columns) -> None:
  f = io.StringIO()
  w = csv.DictWriter(f, columns, extrasaction="ignore")
  w.writeheader()
  w.writerows(rows)
  write_text(path, f.getvalue())


def pyplot():
  """matplotlib's pyplot, drawing to files (Agg)."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  return plt


def save_figure(fig, path: pathlib.Path) -> None:
  """`fig` as a PNG at `path` (`write_atomic`), then closed."""
  try:
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
  finally:
    pyplot().close(fig)


# --- checkpoints -----------------------------------------------------------------


@contextlib.contextmanager
def _held_stderr():
  """Standard error (the file descriptor, for every thread) held in a file:
  passed on at the end, unless the block raised. orbax's writer threads log
  and print tracebacks of a failed write; the error raised says it in one line."""
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as held:
    os.dup2(held.fileno(), 2)
    failed = True
    try:
      yield
      failed = False
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      if not failed:
        held.seek(0)
        os.write(2, held.read())


# orbax keeps one operation id per process for the signals of a save, so two
# runs saving at once (`compare` with jobs > 1) take turns.
_ORBAX = threading.Lock()


class Checkpoints:
  """Orbax checkpoints of (model, optimizer) state and a JSON record per epoch;
  the two newest are kept. Saves are synchronous: an error is raised here."""

  def __init__(self, directory: pathlib.Path):
    self.directory = directory.absolute()
    self._open()
    if jax.process_count() > 1:  # every process must go on from the same complete checkpoint
      latest = self.manager.latest_step()
      seen = multihost_utils.process_allgather(np.int32(-1 if latest is None else latest)).tolist()
      if len(set(seen)) > 1:
        raise ResumeError(f"the processes see different checkpoints in {directory} (the latest "
                          f"epoch by process, -1 for none: {seen}); the work directory must be "
                          "one directory that every process sees")

  def _open(self) -> None:
    with _ORBAX:
      try:
        self.manager = ocp.CheckpointManager(self.directory, options=ocp.CheckpointManagerOptions(
            max_to_keep=2, create=True, enable_async_checkpointing=False))
      except OSError as e:
        raise OutputError(f"cannot write {self.directory}: {_cause(e)}") from None

  def save(self, epoch: int, state, record: dict[str, Any]) -> None:
    """Saves epoch `epoch`; raises `OutputError` if it cannot be written
    (the manager closed first, what its threads print held back: `_held_stderr`)."""
    with _ORBAX, _held_stderr():
      try:
        self.manager.save(epoch, args=ocp.args.Composite(
            state=ocp.args.StandardSave(nnx.to_pure_dict(state)),
            record=ocp.args.JsonSave(record)))
      except Exception as e:  # pylint: disable=broad-except
        for logger in ("absl", "asyncio"):  # and what they log when their tasks are collected
          logging.getLogger(logger).setLevel(logging.CRITICAL)
        time.sleep(1.0)  # the writes still in flight fail meanwhile
        with contextlib.suppress(Exception):
          self.manager.close()
        raise OutputError(f"cannot write checkpoint {epoch} to {self.directory}: "
                          f"{_cause(e)}") from None

  def restore(self, state, check: Callable[[dict[str, Any]], None], log: Callable[[str], None]):
    """The newest checkpoint that restores, into `state`: (state, record, epoch).

    Its record goes to `check` first (which raises for a run with other
    settings). A damaged checkpoint is renamed ``<epoch>.damaged`` (kept
    for inspection) and the one before it tried.

    Raises:
      ResumeError: if none restores.
    """
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, nnx.to_pure_dict(state))
    damaged = []
    for step in sorted(self.manager.all_steps(), reverse=True):
      try:
        with _ORBAX:
          record = self.manager.restore(step, args=ocp.args.Composite(
              record=ocp.args.JsonRestore()))["record"]
      except Exception as e:  # pylint: disable=broad-except
        damaged.append((step, _cause(e)))
        continue
      check(record)
      try:
        with _ORBAX:
          out = self.manager.restore(step, args=ocp.args.Composite(
              state=ocp.args.StandardRestore(abstract)))
      except Exception as e:  # pylint: disable=broad-except
        damaged.append((step, _cause(e)))
        continue
      if damaged:
        self._set_aside(damaged)
        for bad, why in damaged:
          log(f"checkpoint {bad} cannot be restored ({why}), kept as {bad}.damaged; "
              f"resuming from checkpoint {step}")
      nnx.replace_by_pure_dict(state, out["state"])
      return state, record, step
    self._set_aside(damaged)
    raise ResumeError(f"--resume: no checkpoint in {self.directory} can be restored (" + "; ".join(
        f"{s}: {why}" for s, why in damaged) + "); they are kept as <epoch>.damaged")

  def _set_aside(self, damaged: list[tuple[int, str]]) -> None:
    """Renames the damaged checkpoints' folders (orbax will not save over one)."""
    self.close()
    if jax.process_index() == 0:
      for step, _ in damaged:
        (self.directory / str(step)).rename(self.directory / f"{step}.damaged")
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices("damaged checkpoints set aside")
    self._open()

  def close(self) -> None:
    with _ORBAX:
      self.manager.close()  # idempotent


def check_same_run(saved: dict[str, Any], new: dict[str, Any], workdir: pathlib.Path) -> None:
  """Resuming is only sound with every setting that shapes the trajectory unchanged.

  Raises:
    ResumeError: naming each setting that differs, in one line.
  """
  keys = ("schedule", "plateau", "train_size", "test_size", "steps_per_epoch")
  was = {k: v for k, v in saved["config"].items() if k != "epochs"} | {k: saved.get(k) for k in keys}
  now = {k: v for k, v in new["config"].items() if k != "epochs"} | {k: new[k] for k in keys}
  short = lambda x: (lambda r: r if len(r) <= 60 else r[:57] + "...")(repr(x))
  differ = [f"{k} {short(was.get(k))} (now {short(now.get(k))})"
            for k in dict.fromkeys([*was, *now]) if was.get(k) != now.get(k)]
  if differ:
    raise ResumeError(f"--resume: {workdir} holds a run with other settings: {', '.join(differ)}; "
                      "use the same settings or another --workdir")


# --- per-epoch metrics -------------------------------------------------------------

# Each metric of an epoch's row: its TensorBoard tag, and its console format (None: not printed).
METRICS = {
    "train_loss": ("train/loss", "Train Loss: {:.4f}"),
    "train_acc": ("train/accuracy", None),
    "test_loss": ("test/loss", "Test Loss: {:.4f}"),
    "test_acc": ("test/accuracy", "Test Acc: {:.2f}"),
    "lr": ("lr/epoch", "LR: {:.4g}"),
    "lr_last": ("lr/epoch_last", None),
    "plateau_scale": ("lr/plateau_scale", None),
    "time": ("time/epoch_s", "Time: {:.1f}s"),
}
COLUMNS = ("epoch", *METRICS)
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
    `METRICS` and ``lr_curve``: a few (step in epoch, rate) pairs for the plot.
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
  return ", ".join([f"Epoch {row['epoch']}"] + [
      fmt.format(row[key]) for key, (_, fmt) in METRICS.items() if fmt])


class TensorBoard:
  """TensorBoard event files in `logdir`: `METRICS` per epoch (at step =
  epoch), and ``lr/step``, the rate of every update (at its step).

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
    for key, (tag, _) in METRICS.items():
      self.writer.add_scalar(tag, row[key], row["epoch"])
    for i, rate in enumerate(np.asarray(rates, np.float64)):
      self.writer.add_scalar("lr/step", rate, first_step + i)
    self.writer.flush()


class Run:
  """One run's outputs in `workdir` (None: only its console lines and history).

  Args:
    workdir: created and written to at once (`check_writable`).
    name: printed before each line (``[name] ...``), for runs that share the terminal.
  """

  def __init__(self, workdir: str | pathlib.Path | None, *, name: str | None = None):
    self.workdir = None if workdir is None else pathlib.Path(workdir)
    self.name, self.prefix = name, "" if name is None else f"[{name}] "
    self.main = jax.process_index() == 0
    self.record: dict[str, Any] = {"history": []}
    self.state = self.checkpoints = self.tensorboard = None
    self.diverged: int | None = None  # the epoch whose training loss was not finite
    self.failure = ""  # the line that says so
    if self.workdir is not None and self.main:
      check_writable(self.workdir)

  @property
  def history(self) -> list[dict[str, Any]]:
    return self.record["history"]

  def log(self, text: str) -> None:
    if self.main:
      print(self.prefix + text, flush=True)

  def start(self, state, record: dict[str, Any], *, resume: bool = False) -> None:
    """Opens the checkpoints (a fresh run removes old ones) and TensorBoard;
    with `resume`, restores the newest checkpoint that restores into `state`.

    Raises:
      ResumeError: if that checkpoint's settings differ from `record`'s, or none restores.
    """
    self.record, self.state = record, state
    ckpt_dir = self.workdir / "checkpoints"
    if self.main and not resume and ckpt_dir.exists():
      shutil.rmtree(ckpt_dir)  # a fresh run replaces an old one's checkpoints
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices("workdir ready")
    self.checkpoints = Checkpoints(ckpt_dir)
    if resume and self.checkpoints.manager.latest_step() is not None:
      self.state, saved, epoch = self.checkpoints.restore(
          state, lambda saved: check_same_run(saved, record, self.workdir), self.log)
      record["history"] = saved["history"][:epoch]
      self.log(f"Resuming {self.workdir} after epoch {epoch}")
    if self.main:
      self.tensorboard = TensorBoard(self.workdir, fresh=not resume)

  def add(self, epoch: int, train: Mapping[str, np.ndarray], test: Mapping[str, Any],
          seconds: float, state: Callable[[], Any]) -> None:
    """Epoch `epoch`'s row: written, its ``state()`` checkpointed, then printed;
    a training loss that is not finite marks the run diverged instead."""
    if self.diverged:
      return
    finite = np.isfinite(train["loss_sum"])
    if not finite.all():
      bad = int(np.argmin(finite))
      self.diverged = epoch
      self.failure = (f"{self.prefix}diverged at epoch {epoch}: training loss "
                      f"{train['loss_sum'][bad] / train['count'][bad]} at rate "
                      f"{train['lr'][bad]:.4g}; nothing written after epoch {epoch - 1}. "
                      "Try a lower --lr (--find-lr suggests one)")
      self.log(self.failure.removeprefix(self.prefix))
      return
    row = epoch_row(epoch, train, test, seconds)
    self.history.append(row)
    if self.workdir is not None:
      if self.main:
        write_metrics(self.workdir, self.record)
        self.tensorboard.write(row, train["lr"], (epoch - 1) * self.record["steps_per_epoch"])
      self.checkpoints.save(epoch, state(), self.record)
    self.log(format_row(row))  # once saved

  def finish(self, schedule: str | dict[str, Any]) -> None:
    """The metrics files and ``plot.png`` once more, after the last epoch."""
    if self.main and self.history:
      write_metrics(self.workdir, self.record)
      plot(self.workdir / "plot.png", {schedule_label(schedule): self.history})

  def __enter__(self) -> Run:
    return self

  def __exit__(self, *exc) -> None:
    if self.checkpoints is not None:
      self.checkpoints.close()
    if self.tensorboard is not None:
      self.tensorboard.writer.close()


def schedule_label(schedule: str | dict[str, Any]) -> str:
  """A name for plots and directories: the schedule's name or lrjax type."""
  return schedule if isinstance(schedule, str) else str(schedule.get("type", "custom"))


def write_metrics(workdir: pathlib.Path, record: dict[str, Any]) -> None:
  """``metrics.json`` (config, schedule, history) and ``metrics.csv`` (history)."""
  write_text(workdir / "metrics.json", json.dumps(record, indent=1) + "\n")
  write_csv(workdir / "metrics.csv", record["history"], COLUMNS)


# --- plots and tables ------------------------------------------------------------------


def plot(path: pathlib.Path, runs: dict[str, list[dict[str, Any]]]) -> None:
  """Train loss, test loss, test accuracy and rate against epoch, one curve per run."""
  plt = pyplot()

  fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
  panels = [("train_loss", "train loss"), ("test_loss", "test loss"),
            ("test_acc", "test accuracy"), ("lr", "learning rate")]
  for (key, title), ax in zip(panels, axes.flat):
    for name, history in filter(lambda item: item[1], runs.items()):
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
  save_figure(fig, path)




def summarize(history: list[dict[str, Any]], diverged: int | None = None) -> dict[str, Any]:
  """A run's best test accuracy (and its epoch), its final metrics, and the
  epoch it diverged at (None if it did not)."""
  nan = float("nan")
  best = max(history, key=lambda r: r["test_acc"], default={"test_acc": nan, "epoch": 0})
  last = history[-1] if history else {"test_acc": nan, "train_loss": nan, "test_loss": nan}
  return {"best_test_acc": best["test_acc"], "best_epoch": best["epoch"],
          "final_test_acc": last["test_acc"], "final_train_loss": last["train_loss"],
          "final_test_loss": last["test_loss"], "diverged": diverged}


def results_table(rows: list[dict[str, Any]], name: str = "schedule") -> str:
  """A Markdown table of `summarize` rows named by `rows[i][name]`, with the
  time column where the rows have ``time_s``."""
  timed = "time_s" in rows[0]
  lines = [f"| {name} | best test acc (epoch) | final test acc | final train loss | final test loss |"
           + (" time (s) |" if timed else ""),
           "|---|---|---|---|---|" + ("---|" if timed else "")]
  for r in rows:
    if r.get("diverged"):
      lines.append(f"| {r[name]} | diverged at epoch {r['diverged']} |" + " |" * (3 + timed))
      continue
    lines.append(f"| {r[name]} | {r['best_test_acc']:.4f} ({r['best_epoch']}) | "
                 f"{r['final_test_acc']:.4f} | {r['final_train_loss']:.4f} | "
                 f"{r['final_test_loss']:.4f} |" + (f" {r['time_s']:.0f} |" if timed else ""))
  return "\n".join(lines)


def write_comparison(workdir: pathlib.Path, rows: list[dict[str, Any]],
                     runs: dict[str, list[dict[str, Any]]], stem: str = "comparison",
                     name: str = "schedule") -> str:
  """``<stem>.csv``, ``<stem>.md`` and ``<stem>.png`` in `workdir`; returns the table."""
  write_csv(workdir / f"{stem}.csv", rows, list(rows[0]))
  table = results_table(rows, name)
  write_text(workdir / f"{stem}.md", table + "\n")
  plot(workdir / f"{stem}.png", runs)
  return table


def plot_range_test(path: pathlib.Path, result: lrjax.RangeTestResult) -> None:
  """The raw and smoothed loss against the rate (log scale), suggestions marked."""
  plt = pyplot()

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
  save_figure(fig, path)
