"""The cost of cooldown branches: the example's branched command against K separate runs.

``--branch E1,...,EK --cooldown-epochs N`` trains the run to E_K once and the
K cooldowns from its saved states together (`branch.branch`); the same K
results come from K separate runs, each trained from scratch under the
cooldown of the run's schedule at E_i (`train.train_and_evaluate` with that
lrjax schedule). Both are timed here, one after the other in one process
(wall time, compilation included, as a user waits for it), with each
branch's final and best test accuracy against its separate run's (equal bit
for bit in ``threads`` mode), and, as the experiment's reference, one run of
``--reference`` (by default a per-step cosine to 0 after one epoch of warmup)
as long as the longest branch. The issue's target for the wall-time ratio is
``1.1 * (E_K + K N) / sum(E_i + N)``: the epochs trained, with a tenth to spare.

  python benchmarks/branch_cost.py                        # wsd, 10,15,20 + 5, full data
  python benchmarks/branch_cost.py --quick                # a smoke size
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import pathlib
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import timing

COLUMNS = ["run", "epochs", "best test acc (epoch)", "final test acc", "final test loss",
           "separate run's final test acc"]


def _timed(fn):
  with contextlib.redirect_stdout(sys.stderr):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--schedule", default="wsd")
  parser.add_argument("--epochs", type=int, default=25, help="the run's --epochs")
  parser.add_argument("--branch", default="10,15,20")
  parser.add_argument("--cooldown-epochs", type=int, default=5)
  parser.add_argument("--lr", type=float, default=0.3)
  parser.add_argument("--train-subset", type=int)
  parser.add_argument("--test-subset", type=int)
  parser.add_argument("--data-dir")
  parser.add_argument("--no-reference", action="store_true", help="no reference cosine run")
  parser.add_argument("--quick", action="store_true",
                      help="a smoke size: 6 epochs branched at 2,4 + 2 on 512 / 256 images")
  parser.add_argument("--json", help="also write the results here")
  args = parser.parse_args(argv)
  if args.quick:
    args.epochs, args.branch, args.cooldown_epochs = 6, "2,4", 2
    args.train_subset, args.test_subset = args.train_subset or 512, args.test_subset or 256
  branch, schedules, train, lrjax = timing.import_example(
      "branch_cost", "branch", "schedules", "train", "lrjax")
  points, n = [int(x) for x in args.branch.split(",")], args.cooldown_epochs
  config = train.Config(schedule=args.schedule, epochs=args.epochs, learning_rate=args.lr,
                        data_dir=args.data_dir, train_subset=args.train_subset,
                        test_subset=args.test_subset)
  spe = train.steps_per_epoch(config)
  plan = schedules.make_plan(config, spe)
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    rows, branched_s = _timed(lambda: branch.branch(config, points, n, tmp / "branched"))
    separate, separate_s = {}, 0.0
    for e in points:
      cooled = lrjax.cooldown(plan.schedule, start=e * spe, decay_steps=n * spe)
      c = dataclasses.replace(config, schedule=cooled.to_dict(), epochs=e + n)
      separate[e], seconds = _timed(lambda c=c, e=e: train.train_and_evaluate(c, tmp / f"alone-{e}"))
      separate_s += seconds
    reference = None
    if not args.no_reference:
      length = points[-1] + n
      cosine = lrjax.cosine_decay(args.lr, warmup_steps=spe, decay_steps=(length - 1) * spe)
      c = dataclasses.replace(config, schedule=cosine.to_dict(), epochs=length)
      reference = _timed(lambda: train.train_and_evaluate(c, tmp / "reference").history)[0]
  k = len(points)
  target = 1.1 * (points[-1] + k * n) / sum(e + n for e in points)
  table = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
  for r, e in zip(rows, points):
    alone = separate[e].history[-1]["test_acc"]
    table.append(f"| {args.schedule} cooled at {e} over {n} | {e + n} | {r['best_test_acc']:.4f} "
                 f"({r['best_epoch']}) | {r['final_test_acc']:.4f} | {r['final_test_loss']:.4f} | "
                 f"{alone:.4f} |")
  if reference is not None:
    best = max(reference, key=lambda r: r["test_acc"])
    table.append(f"| cosine to 0 (1 epoch warmup) | {len(reference)} | {best['test_acc']:.4f} "
                 f"({best['epoch']}) | {reference[-1]['test_acc']:.4f} | "
                 f"{reference[-1]['test_loss']:.4f} | — |")
  print(f"branch cost: {timing.machine()}; {args.schedule}, --epochs {args.epochs}, branches "
        f"at {args.branch} + {n}, {spe} steps an epoch\n")
  print("\n".join(table))
  ratio = branched_s / separate_s
  print(f"\nbranched command {branched_s:.1f} s, {k} separate runs {separate_s:.1f} s: "
        f"{ratio:.2f}x (target {target:.2f}x: {'met' if ratio <= target else 'missed'})")
  report = {"schedule": args.schedule, "epochs": args.epochs, "branch": points,
            "cooldown_epochs": n, "steps_per_epoch": spe, "branched_s": branched_s,
            "separate_s": separate_s, "ratio": ratio, "target": target,
            "rows": rows, "separate_final_test_acc": {
                str(e): separate[e].history[-1]["test_acc"] for e in points},
            "reference": reference, "machine": timing.machine()}
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
  return report


if __name__ == "__main__":
  main()
