"""What a run leaves behind: checkpoints, metrics files, TensorBoard events, plots, tables.

A `Run` is one run's outputs; `METRICS` names each metric's TensorBoard tag
and console format. Every file is written whole or not at all (a temporary
file, then a rename); a write that fails is an `OutputError` naming the path
and the cause.
"""

import csv
import functools
import io
import json
import os
import pathlib
import shutil
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils

import input_pipeline


class ResumeError(ValueError):
  """``--resume`` met a checkpoint made with other settings, or none that restores."""


class OutputError(RuntimeError):
  """An output cannot be written (a full disk, a read-only filesystem, a quota)."""


def _cause(e: BaseException) -> str:
  """The OS error in `e`'s chain, else `e`'s first line."""
  seen = e
  while seen is not None:
    if isinstance(seen, OSError) and seen.strerror:
      return seen.strerror
    seen = seen.__cause__ or seen.__context__
  return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


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


# --- checkpoints -----------------------------------------------------------------


class Checkpoints:
  """The (model, optimizer) state and the run's record after each epoch, the
  two newest kept: ``<directory>/<epoch>``, an ``.npz`` of the state's arrays
  by their path and of the record as JSON. Process 0 writes them (the state is
  replicated), each under a temporary name, then renamed: a checkpoint whose
  name is its epoch is complete."""

  def __init__(self, directory: pathlib.Path):
    self.directory = directory.absolute()
    if jax.process_count() > 1:  # every process must go on from the same complete checkpoint
      latest = ([-1] + self.steps())[-1]  # -1 for none (epochs count from 1)
      seen = multihost_utils.process_allgather(np.int32(latest)).tolist()
      if len(set(seen)) > 1:
        raise ResumeError(f"the processes see different checkpoints in {directory} (the latest "
                          f"epoch by process, -1 for none: {seen}); the work directory must be "
                          "one directory that every process sees")

  def steps(self) -> list[int]:
    """The epochs of the complete checkpoints, oldest first."""
    names = os.listdir(self.directory) if self.directory.is_dir() else []
    return sorted(int(name) for name in names if name.isdigit())

  def save(self, epoch: int, state, record: dict[str, Any]) -> None:
    """Saves epoch `epoch` and deletes all but the two newest.

    Raises:
      OutputError: if it cannot be written (`write_atomic`).
    """
    if jax.process_index() > 0:
      return
    arrays = jax.tree_util.tree_leaves_with_path(input_pipeline.host(nnx.to_pure_dict(state)))

    def write(tmp: pathlib.Path) -> None:
      with open(tmp, "wb") as f:  # a file, so that numpy adds no suffix
        np.savez(f, record=np.array(json.dumps(record)),
                 **{jax.tree_util.keystr(path): x for path, x in arrays})

    write_atomic(self.directory / str(epoch), write)
    for old in self.steps()[:-2]:
      (self.directory / str(old)).unlink()

  def restore(self, state, check: Callable[[dict[str, Any]], None], log: Callable[[str], None]):
    """The newest checkpoint that restores, into `state`: (state, record, epoch).

    Its record goes to `check` first (which raises `ResumeError` for other
    settings, whose state may not fit). A damaged checkpoint (unreadable, or
    an array missing or of another shape or type) is renamed
    ``<epoch>.damaged`` (kept) and the one before tried.

    Raises:
      ResumeError: if none restores.
    """
    def load(f, path, like):
      x = f[jax.tree_util.keystr(path)]
      if (x.shape, x.dtype) != (like.shape, like.dtype):
        raise ValueError(f"{jax.tree_util.keystr(path)} is {x.dtype}{list(x.shape)}, "
                         f"not {like.dtype}{list(like.shape)}")
      return x

    steps, damaged = self.steps()[::-1], []
    for step in steps:
      try:
        with np.load(self.directory / str(step)) as f:
          record = json.loads(str(f["record"]))
          check(record)
          restored = jax.tree_util.tree_map_with_path(functools.partial(load, f),
                                                      nnx.to_pure_dict(state))
      except ResumeError:
        raise
      except Exception as e:  # pylint: disable=broad-except
        damaged.append((step, _cause(e)))
      else:
        break
    if jax.process_index() == 0:
      for bad, _ in damaged:
        (self.directory / str(bad)).rename(self.directory / f"{bad}.damaged")
    if len(damaged) == len(steps):
      raise ResumeError(f"--resume: no checkpoint in {self.directory} can be restored (" + "; ".join(
          f"{s}: {why}" for s, why in damaged) + "); they are kept as <epoch>.damaged")
    for bad, why in damaged:
      log(f"checkpoint {bad} cannot be restored ({why}), kept as {bad}.damaged; "
          f"resuming from checkpoint {step}")
    nnx.replace_by_pure_dict(state, restored)
    return state, record, step


def check_same_run(saved: dict[str, Any], new: dict[str, Any], workdir: pathlib.Path) -> None:
  """Resuming is only sound with every setting that shapes the trajectory unchanged.

  Raises:
    ResumeError: naming each setting that differs, in one line.
  """
  keys = ("schedule", "plateau", "train_size", "test_size", "steps_per_epoch")
  was, now = ({k: v for k, v in r["config"].items() if k != "epochs"} | {k: r.get(k) for k in keys}
              for r in (saved, new))
  short = lambda x: repr(x) if len(repr(x)) <= 60 else repr(x)[:57] + "..."
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
  """One epoch's row: `METRICS` and ``lr_curve``, a few (step in epoch, rate)
  pairs for the plot, from the train step's metrics (arrays over the epoch's
  steps: ``loss_sum``, ``correct``, ``count``, ``lr`` the rate the update
  used, ``plateau_scale``) and the test pass's sums."""
  lr = np.asarray(train["lr"])
  at = np.unique(np.linspace(0, len(lr) - 1, min(len(lr), CURVE_POINTS)).round().astype(int))
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


class Run:
  """One run's outputs in `workdir` (None: only its console lines and history).

  Args:
    workdir: created and written to at once (`check_writable`).
    name: printed before each line (``[name] ...``), for runs that share the terminal.
  """

  def __init__(self, workdir: str | pathlib.Path | None, *, name: str | None = None):
    self.workdir = None if workdir is None else pathlib.Path(workdir)
    self.prefix = "" if name is None else f"[{name}] "
    self.main = jax.process_index() == 0
    self.record: dict[str, Any] = {"history": []}
    self.state = self.checkpoints = self.writer = None
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
    """Opens the checkpoints and TensorBoard: a fresh run removes an earlier
    one's, `resume` restores the newest checkpoint that restores into `state`.

    Raises:
      ResumeError: if that checkpoint's settings differ from `record`'s, or none restores.
      OutputError: if the checkpoint directory cannot be emptied or made.
    """
    self.record, self.state = record, state
    ckpt_dir = self.workdir / "checkpoints"
    if self.main:
      try:
        if not resume and ckpt_dir.exists():
          shutil.rmtree(ckpt_dir)  # an earlier run's, which --resume would take for this one's
        ckpt_dir.mkdir(exist_ok=True)
      except OSError as e:
        raise OutputError(f"cannot write {ckpt_dir}: {_cause(e)}") from None
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices("workdir ready")
    self.checkpoints = Checkpoints(ckpt_dir)
    if resume and self.checkpoints.steps():
      self.state, saved, epoch = self.checkpoints.restore(
          state, lambda saved: check_same_run(saved, record, self.workdir), self.log)
      record["history"] = saved["history"][:epoch]
      self.log(f"Resuming {self.workdir} after epoch {epoch}")
    if self.main:
      from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel
      if not resume:
        for old in self.workdir.glob("events.out.tfevents.*"):
          old.unlink()
      self.writer = SummaryWriter(str(self.workdir))

  def add(self, epoch: int, train: Mapping[str, np.ndarray], test: Mapping[str, Any],
          seconds: float, state: Callable[[], Any]) -> None:
    """Epoch `epoch`'s row (`epoch_row`): written (and to TensorBoard every
    update's rate), its ``state()`` checkpointed, then printed; a training
    loss that is not finite marks the run diverged instead."""
    if self.diverged:
      return
    finite = np.isfinite(train["loss_sum"])
    if not finite.all():
      bad = int(np.argmin(finite))
      message = (f"diverged at epoch {epoch}: training loss "
                 f"{train['loss_sum'][bad] / train['count'][bad]} at rate "
                 f"{train['lr'][bad]:.4g}; nothing written after epoch {epoch - 1}. "
                 "Try a lower --lr (--find-lr suggests one)")
      self.diverged, self.failure = epoch, self.prefix + message
      self.log(message)
      return
    row = epoch_row(epoch, train, test, seconds)
    self.history.append(row)
    if self.workdir is not None:
      if self.main:
        write_text(self.workdir / "metrics.json", json.dumps(self.record, indent=1) + "\n")
        write_csv(self.workdir / "metrics.csv", self.history, COLUMNS)
        for key, (tag, _) in METRICS.items():
          self.writer.add_scalar(tag, row[key], epoch)
        first_step = (epoch - 1) * self.record["steps_per_epoch"]
        for step, rate in enumerate(np.asarray(train["lr"]).tolist(), first_step):
          self.writer.add_scalar("lr/step", rate, step)
        self.writer.flush()
      self.checkpoints.save(epoch, state(), self.record)
    self.log(", ".join([f"Epoch {epoch}"] + [
        fmt.format(row[key]) for key, (_, fmt) in METRICS.items() if fmt]))

  def finish(self, schedule: str | dict[str, Any]) -> None:
    """``plot.png``, after the last epoch."""
    if self.main and self.history:
      plot(self.workdir / "plot.png", {schedule_label(schedule): self.history})

  def __enter__(self) -> "Run":
    return self

  def __exit__(self, *exc) -> None:
    if self.writer is not None:
      self.writer.close()


def schedule_label(schedule: str | dict[str, Any]) -> str:
  """A name for plots and directories: the schedule's name or lrjax type."""
  return schedule if isinstance(schedule, str) else str(schedule.get("type", "custom"))


# --- plots and tables ------------------------------------------------------------------


def plot(path: pathlib.Path, runs: dict[str, list[dict[str, Any]]]) -> None:
  """Train loss, test loss, test accuracy and rate against epoch, one curve per run."""
  from matplotlib.figure import Figure  # pylint: disable=import-outside-toplevel
  fig = Figure(figsize=(10, 7), dpi=120, layout="tight")  # not pyplot's: safe in any thread
  axes = fig.subplots(2, 2, sharex=True)
  panels = [("train_loss", "train loss"), ("test_loss", "test loss"),
            ("test_acc", "test accuracy"), ("lr", "learning rate")]
  for (key, title), ax in zip(panels, axes.flat):
    for name, history in filter(lambda item: item[1], runs.items()):
      if key == "lr":  # samples of the rates used, at their place in the epoch
        spe = max(history[0]["lr_curve"][-1][0] + 1, 1)
        x = [r["epoch"] - 1 + i / spe for r in history for i, _ in r["lr_curve"]]
        ax.plot(x, [v for r in history for _, v in r["lr_curve"]], label=name)
      else:
        ax.plot([r["epoch"] for r in history], [r[key] for r in history],
                marker="." if len(history) < 40 else None, label=name)
    ax.set_title(title)
    ax.grid(alpha=0.3)
  for ax in axes[1]:
    ax.set_xlabel("epoch")
  axes[0, 0].legend()
  write_atomic(path, fig.savefig)  # a PNG: the temporary file keeps the suffix


def write_table(workdir: pathlib.Path, runs: Mapping[str, Any], stem: str, column: str,
                summary: str) -> list[dict[str, Any]]:
  """The results of `runs` (name -> anything with `history` and `diverged`: a
  `Run`, a `train.Result`), `summary` after them, printed and written (by
  process 0) to ``<stem>.md``, ``<stem>.csv`` and ``<stem>.png`` in `workdir`.

  Returns:
    The rows: per run its best test accuracy and epoch, final metrics, time
    (the sum of its epochs') and the epoch it diverged at (None if it did not).
  """
  nan = float("nan")
  lines = [f"| {column} | best test acc (epoch) | final test acc | final train loss | "
           "final test loss | time (s) |", "|---" * 6 + "|"]
  rows = []
  for name, run in runs.items():
    history = run.history or [{"epoch": 0, "test_acc": nan, "train_loss": nan, "test_loss": nan}]
    best, last = max(history, key=lambda r: r["test_acc"]), history[-1]
    rows.append(row := {
        column: name, "best_test_acc": best["test_acc"], "best_epoch": best["epoch"],
        "final_test_acc": last["test_acc"], "final_train_loss": last["train_loss"],
        "final_test_loss": last["test_loss"], "time_s": sum(r["time"] for r in run.history),
        "diverged": run.diverged})
    lines.append(f"| {name} | diverged at epoch {run.diverged} |" + " |" * 4 if run.diverged else
                 f"| {name} | {row['best_test_acc']:.4f} ({row['best_epoch']}) | "
                 f"{row['final_test_acc']:.4f} | {row['final_train_loss']:.4f} | "
                 f"{row['final_test_loss']:.4f} | {row['time_s']:.0f} |")
  if jax.process_index() == 0:
    text = "\n".join(lines) + f"\n\n{summary}"
    write_csv(workdir / f"{stem}.csv", rows, list(rows[0]))
    write_text(workdir / f"{stem}.md", text + "\n")
    plot(workdir / f"{stem}.png", {name: run.history for name, run in runs.items()})
    print(text, flush=True)
  return rows
