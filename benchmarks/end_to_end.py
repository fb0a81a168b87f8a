"""The Fashion-MNIST example end to end against the PyTorch reference loop.

What users feel is the wall time of the example's main command, not one step
in isolation. In one process, on the same CPU and the same real data, this
runs for each schedule of ``--schedules`` (default: the README's main
command, ``none,sqrt,multistep,cosine,plateau``):

* ``lrjax example``: ``train.train_and_evaluate`` exactly as
  ``compare.compare`` calls it (one shared cache of optimizer transforms, so
  the runs share their traced steps), in a temporary work directory, with
  its checkpoints, metrics files, TensorBoard events and plot;
* ``PyTorch``: the article's LeNet (``nn.Conv2d``, ``F.max_pool2d``,
  ``nn.Linear``, default initialisation) and loop (``zero_grad``, forward,
  ``cross_entropy``, ``backward``, ``SGD.step``; then a test pass under
  ``no_grad``), the data in memory as uint8 tensors scaled in the loop as the
  JAX step does, the same epoch order (``input_pipeline.epoch_order(seed,
  epoch)``), the last batch partial, and the same rates: epoch ``e`` trains
  at the schedule's value for ``e``, set by a PyTorch scheduler stepped once
  per epoch (``LambdaLR`` from the closed forms below, ``MultiStepLR``,
  ``ReduceLROnPlateau`` on the test accuracy with the example's settings).

The two alternate (lrjax first for the first schedule, PyTorch first for the
next, ...) so that machine noise hits them alike. Then, with several
schedules and ``--jobs`` above 1 (``auto``: as ``compare.resolve_jobs``, 2 on
a CPU), the example's main command itself: ``compare.compare`` of all the
schedules, ``--jobs`` runs at a time, its wall time against the PyTorch runs
one after another (their whole runs above, summed), and whether its final
accuracies equal those of the runs one at a time (they should: the same
programs on the same batches). An epoch's time is the wall
time between the end of one epoch and the end of the next (for lrjax: each
checkpoint's ``save`` returning, so the test pass, the metrics files and the
checkpoint are in it); the first epoch, which includes start-up and
compilation, is reported apart from the median of the others. The whole run
is the wall time of ``train_and_evaluate`` (or of the PyTorch loop with its
data loading). The ratios: ``epoch ×`` is PyTorch's median epoch over
lrjax's (above 1: lrjax is faster), ``wall ÷`` lrjax's whole run over
PyTorch's (below 1: lrjax is faster). Without torch the script says so and
prints lrjax's rows.

Usage::

  python benchmarks/end_to_end.py                    # 5 schedules x 30 epochs (about 30 min on 2 cores)
  python benchmarks/end_to_end.py --epochs 3         # a look
  python benchmarks/end_to_end.py --schedules cosine --epochs 5 --json out.json
  python benchmarks/end_to_end.py --quick --data-dir DIR   # a smoke test, not a measurement
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import pathlib
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

import timing
from torch_lenet import torch_lenet

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "fashion_mnist"
DEFAULT_SCHEDULES = "none,sqrt,multistep,cosine,plateau"
JAX_ROW, TORCH_ROW = "lrjax example", "PyTorch"
TORCH_SCHEDULES = ("none", "sqrt", "multistep", "cosine", "plateau")
COLUMNS = ["implementation", "schedule", "epochs", "first epoch (s)", "median epoch (s)",
           "whole run (s)", "final test acc", "epoch ×PyTorch", "wall ÷PyTorch"]


def _import_example():
  """The example's ``train`` and ``compare`` modules, or a clear error."""
  if not (EXAMPLE / "train.py").exists():
    raise SystemExit(f"end_to_end: {EXAMPLE / 'train.py'} not found; "
                     "this benchmark runs the Fashion-MNIST example")
  if str(EXAMPLE) not in sys.path:
    sys.path.insert(0, str(EXAMPLE))
  import compare  # pylint: disable=import-outside-toplevel
  import train  # pylint: disable=import-outside-toplevel
  return train, compare


# --- lrjax ----------------------------------------------------------------------


class _EpochClock:
  """Wall-clock times of the example's epoch ends: each checkpoint save returning."""

  def __init__(self, ex):
    self.cls = ex.reporting.Checkpoints
    self.ends: list[float] = []

  def __enter__(self):
    original = self.original = self.cls.save
    ends = self.ends

    def save(ckpts, *args, **kwargs):
      out = original(ckpts, *args, **kwargs)
      ends.append(time.perf_counter())
      return out

    self.cls.save = save
    return self

  def __exit__(self, *exc):
    self.cls.save = self.original


def run_jax(ex, config, workdir: pathlib.Path, transforms: dict) -> dict[str, Any]:
  """One `train_and_evaluate` run, as `compare.compare` makes it; its timings."""
  with _EpochClock(ex) as clock, contextlib.redirect_stdout(sys.stderr):
    t0 = time.perf_counter()
    history = ex.train_and_evaluate(config, workdir, transforms=transforms).history
    total = time.perf_counter() - t0
  marks = [t0] + clock.ends
  return {"epoch_s": [b - a for a, b in zip(marks, marks[1:])], "total_s": total,
          "test_acc": [r["test_acc"] for r in history]}


def run_compare(compare, config, names: Sequence[str], workdir: pathlib.Path,
                jobs: int) -> dict[str, Any]:
  """`compare.compare` of `names`, `jobs` runs at a time: its wall time and each
  run's test accuracies."""
  with contextlib.redirect_stdout(sys.stderr):
    t0 = time.perf_counter()
    compare.compare(config, {s: s for s in names}, workdir, jobs=jobs)
    total = time.perf_counter() - t0
  accs = {s: [r["test_acc"] for r in json.loads((workdir / s / "metrics.json").read_text())["history"]]
          for s in names}
  return {"total_s": total, "test_acc": accs, "jobs": jobs}


# --- PyTorch ----------------------------------------------------------------------


def torch_rate(name: str, lr: float, epoch: int) -> float:
  """The example's named schedule at `epoch` (from 0), from its closed form.

  ``none``: `lr`; ``sqrt``: ``0.1 (e + 1)^-1/2``; ``multistep``: `lr` halved
  at epochs 15 and 30; ``cosine``: `lr` to 0.01 over 20 epochs, then held.
  """
  if name == "none":
    return lr
  if name == "sqrt":
    return 0.1 / math.sqrt(epoch + 1)
  if name == "multistep":
    return lr * 0.5 ** sum(epoch >= m for m in (15, 30))
  if name == "cosine":
    e = min(epoch, 20)
    return 0.01 + (lr - 0.01) * 0.5 * (1 + math.cos(math.pi * e / 20))
  raise ValueError(f"torch_rate: name must be one of none, sqrt, multistep, cosine, got {name!r}")


def _torch_scheduler(name: str, opt, lr: float):
  import torch  # pylint: disable=import-outside-toplevel
  if name == "plateau":  # the example's keras_plateau settings
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="max", factor=0.5, patience=2, threshold=1e-4, threshold_mode="abs",
        min_lr=1e-5)
  if name == "multistep":
    return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[15, 30], gamma=0.5)
  return torch.optim.lr_scheduler.LambdaLR(opt, lambda e: torch_rate(name, lr, e) / lr)


def run_torch(ex, config, schedule: str) -> dict[str, Any]:
  """The article's loop under `schedule`, data in memory; its timings."""
  import torch  # pylint: disable=import-outside-toplevel
  import torch.nn.functional as F  # pylint: disable=import-outside-toplevel
  t_start = time.perf_counter()
  ds = ex.input_pipeline.load(config.data_dir)
  tr, te = slice(config.train_subset), slice(config.test_subset)
  train_x = torch.from_numpy(ds["train_images"][tr][:, None].copy())
  train_y = torch.from_numpy(ds["train_labels"][tr].astype(np.int64))
  test_x = torch.from_numpy(ds["test_images"][te][:, None].copy())
  test_y = torch.from_numpy(ds["test_labels"][te].astype(np.int64))
  torch.manual_seed(config.seed)
  model = torch_lenet()()
  opt = torch.optim.SGD(model.parameters(), lr=config.learning_rate)
  sched = _torch_scheduler(schedule, opt, config.learning_rate)
  bs, eval_bs = config.batch_size, ex.EVAL_BATCH_FACTOR * config.batch_size
  ends, accs = [], []
  for epoch in range(config.epochs):
    order = torch.from_numpy(ex.input_pipeline.epoch_order(config.seed, epoch, len(train_x)))
    model.train()
    loss_sum = torch.zeros(())
    for i in range(0, len(order), bs):  # the last batch partial, as the example's
      idx = order[i:i + bs]
      x = (train_x[idx].float() / 255.0 - 0.5) / 0.5
      opt.zero_grad(set_to_none=True)
      loss = F.cross_entropy(model(x), train_y[idx])
      loss.backward()
      opt.step()
      loss_sum += loss.detach() * len(idx)
    model.eval()
    correct, test_loss = 0, 0.0
    with torch.no_grad():
      for i in range(0, len(test_x), eval_bs):
        x = (test_x[i:i + eval_bs].float() / 255.0 - 0.5) / 0.5
        logits, y = model(x), test_y[i:i + eval_bs]
        test_loss += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
    acc = correct / len(test_x)
    if schedule == "plateau":
      sched.step(acc)
    else:
      sched.step()
    accs.append(acc)
    ends.append(time.perf_counter())
    print(f"PyTorch {schedule} epoch {epoch + 1}, Train Loss: {float(loss_sum) / len(order):.4f}, "
          f"Test Loss: {test_loss / len(test_x):.4f}, Test Acc: {acc:.4f}, "
          f"Time: {ends[-1] - ([t_start] + ends)[-2]:.2f}s", file=sys.stderr, flush=True)
  marks = [t_start] + ends
  return {"epoch_s": [b - a for a, b in zip(marks, marks[1:])], "total_s": ends[-1] - t_start,
          "test_acc": accs}


# --- the table ----------------------------------------------------------------------


def _row(impl: str, schedule: str, r: dict[str, Any], base: dict[str, Any] | None) -> dict[str, Any]:
  rest = r["epoch_s"][1:]
  median = statistics.median(rest) if rest else None
  row = {"implementation": impl, "schedule": schedule, "epochs": len(r["epoch_s"]),
         "first_epoch_s": r["epoch_s"][0], "median_epoch_s": median, "total_s": r["total_s"],
         "final_test_acc": r["test_acc"][-1] if r["test_acc"] else None,
         "epoch_s": r["epoch_s"], "test_acc": r["test_acc"], "epoch_x_torch": None,
         "wall_div_torch": None}
  if base is not None:
    base_rest = base["epoch_s"][1:]
    if median and base_rest:
      row["epoch_x_torch"] = statistics.median(base_rest) / median
    row["wall_div_torch"] = r["total_s"] / base["total_s"]
  return row


def _fmt(x, spec: str) -> str:
  return "—" if x is None else format(x, spec)


def table(rows: list[dict[str, Any]]) -> str:
  """The markdown table of `rows` (see `COLUMNS`)."""
  lines = ["| " + " | ".join(COLUMNS) + " |", "|---|---|" + "---:|" * (len(COLUMNS) - 2)]
  for r in rows:
    cells = [r["implementation"], r["schedule"], str(r["epochs"]), _fmt(r["first_epoch_s"], ".2f"),
             _fmt(r["median_epoch_s"], ".2f"), _fmt(r["total_s"], ".1f"),
             _fmt(r["final_test_acc"], ".4f"), _fmt(r["epoch_x_torch"], ".2f"),
             _fmt(r["wall_div_torch"], ".2f")]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def _total(runs: list[dict[str, Any]]) -> dict[str, Any]:
  """The runs one after another: the first run's first epoch, then every
  run's other epochs (the later runs' first epochs reuse the traces)."""
  return {"epoch_s": [runs[0]["epoch_s"][0]] + [s for r in runs for s in r["epoch_s"][1:]],
          "total_s": sum(r["total_s"] for r in runs), "test_acc": []}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  """Runs the benchmark, prints the table and returns the results."""
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--epochs", type=int, default=30)
  parser.add_argument("--schedules", default=DEFAULT_SCHEDULES,
                      help=f"comma-separated, of {', '.join(TORCH_SCHEDULES)}")
  parser.add_argument("--lr", type=float, default=0.3)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--data-dir", help="the example's dataset cache (default: its own)")
  parser.add_argument("--train-subset", type=int)
  parser.add_argument("--test-subset", type=int)
  parser.add_argument("--no-torch", action="store_true", help="skip PyTorch")
  parser.add_argument("--torch-threads", type=int, metavar="N",
                      help="torch.set_num_threads(N) (default: PyTorch's own choice)")
  parser.add_argument("--jobs", default="auto", metavar="N|auto",
                      help="runs at a time of the final --compare row; 1 skips it "
                           "(default: %(default)s)")
  parser.add_argument("--json", metavar="PATH", help="also write the results here")
  parser.add_argument("--quick", action="store_true",
                      help="2 epochs of 512 + 256 images under cosine and plateau: a smoke "
                           "test, not a measurement")
  args = parser.parse_args(argv)
  if args.quick:
    args.epochs, args.train_subset, args.test_subset = 2, 512, 256
    if args.schedules == DEFAULT_SCHEDULES:
      args.schedules = "cosine,plateau"
  names = [s.strip() for s in args.schedules.split(",") if s.strip()]
  for s in names:
    if s not in TORCH_SCHEDULES:
      parser.error(f"--schedules: each must be one of {', '.join(TORCH_SCHEDULES)}, got {s!r}")

  ex, compare = _import_example()
  try:
    jobs = compare.resolve_jobs(args.jobs)
  except ValueError as e:
    parser.error(f"--{e}")
  torch_version, torch_threads, torch_missing = None, None, None
  if not args.no_torch:
    try:
      import torch  # pylint: disable=import-outside-toplevel
      if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
      torch_version, torch_threads = torch.__version__, torch.get_num_threads()
    except ImportError as e:
      torch_missing = str(e)

  data_dir = pathlib.Path(args.data_dir) if args.data_dir else ex.input_pipeline.default_data_dir()
  ds = ex.input_pipeline.load(args.data_dir)  # prepares the cache once if needed, before any timing
  sizes = (len(ds["train_images"][:args.train_subset]), len(ds["test_images"][:args.test_subset]))
  del ds
  base = ex.Config(epochs=args.epochs, learning_rate=args.lr, seed=args.seed,
                   data_dir=args.data_dir, train_subset=args.train_subset,
                   test_subset=args.test_subset, progress=False)

  jax_runs, torch_runs = {}, {}
  transforms: dict = {}  # as compare.compare: the runs share their traced steps
  with tempfile.TemporaryDirectory() as tmp:
    for i, s in enumerate(names):
      config = dataclasses.replace(base, schedule=s)
      order = ("jax", "torch") if i % 2 == 0 else ("torch", "jax")
      for which in order:
        if which == "jax":
          print(f"== {JAX_ROW}, {s} ==", file=sys.stderr, flush=True)
          jax_runs[s] = run_jax(ex, config, pathlib.Path(tmp) / s, transforms)
        elif torch_version:
          print(f"== {TORCH_ROW}, {s} ==", file=sys.stderr, flush=True)
          torch_runs[s] = run_torch(ex, config, s)
    together = None
    if len(names) > 1 and jobs > 1:
      print(f"== {JAX_ROW}, --compare {','.join(names)}, {jobs} at a time ==", file=sys.stderr,
            flush=True)
      together = run_compare(compare, base, names, pathlib.Path(tmp) / "compare", jobs)

  rows = []
  for s in names:
    rows.append(_row(JAX_ROW, s, jax_runs[s], torch_runs.get(s)))
    if s in torch_runs:
      rows.append(_row(TORCH_ROW, s, torch_runs[s], None))
  if len(names) > 1:
    jt = _total(list(jax_runs.values()))
    tt = _total(list(torch_runs.values())) if torch_runs else None
    rows.append(_row(JAX_ROW, "all, one after another", jt, tt))
    if tt is not None:
      rows.append(_row(TORCH_ROW, "all, one after another", tt, None))
  if together is not None:
    rows.append({
        "implementation": JAX_ROW, "schedule": f"all, --compare {jobs} at a time",
        "epochs": len(names) * args.epochs, "first_epoch_s": None, "median_epoch_s": None,
        "total_s": together["total_s"], "final_test_acc": None, "epoch_s": None,
        "test_acc": together["test_acc"], "epoch_x_torch": None,
        "wall_div_torch": together["total_s"] / tt["total_s"] if tt else None,
        "same_accuracies": all(together["test_acc"][s] == jax_runs[s]["test_acc"] for s in names)})

  device = jax.devices()[0]
  load = os.getloadavg() if hasattr(os, "getloadavg") else None
  report = {
      "quick": args.quick, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
      "machine": timing.machine(),
      "load_average_at_end": load,
      "device": f"{device.platform} ({device.device_kind}) x{jax.device_count()}",
      "jax": jax.__version__, "torch": torch_version, "torch_threads": torch_threads,
      "data": str(data_dir), "train_size": sizes[0], "test_size": sizes[1],
      "epochs": args.epochs, "schedules": names, "rows": rows,
  }
  print(f"Fashion-MNIST LeNet end to end, {args.epochs} epoch(s) of {sizes[0]:,} training and "
        f"{sizes[1]:,} test images from {data_dir}, batch {base.batch_size}: JAX {jax.__version__} "
        f"on {report['device']}; {report['machine']}; "
        + (f"PyTorch {torch_version} with {torch_threads} thread(s)" if torch_version
           else "PyTorch skipped (--no-torch): lrjax's rows only" if args.no_torch
           else f"PyTorch not installed ({torch_missing}): lrjax's rows only")
        + f"; {report['date']}, load average {', '.join(f'{x:.2f}' for x in load or ())}.\n")
  print(table(rows))
  if together is not None:
    same = rows[-1]["same_accuracies"]
    print(f"\n--compare, {jobs} runs at a time: every run's test accuracies "
          + ("equal those of its run above, epoch by epoch." if same else
             "DIFFER from those of its run above."))
  if args.json:
    with open(args.json, "w") as f:
      json.dump(report, f, indent=1)
  return report


if __name__ == "__main__":
  main(sys.argv[1:])
