"""Throughput of the Fashion-MNIST sweep: K configurations in one program vs K runs.

Trains the example's LeNet (examples/fashion_mnist) under K ``cosine``
schedules with different base rates, for N steps on synthetic batches (the
speed does not depend on the pixels), three ways:

* ``sequential``: K separate runs, one after another, of train.py's jitted
  ``train_step`` on configuration k's own slice of the stacked state: the
  baseline;
* ``unroll``: sweep.py's ``train_all``, the same ``train_step`` over the K
  stacked configurations, K copies of it in one jit (the sweep's default on
  CPU);
* ``map``: the same as a loop over k (``jax.lax.map``) inside one jit;
* ``vmap``: the same by ``jax.vmap`` (its default on GPU and TPU).

Each is called once per step from Python, as a training loop does. The table
gives configuration-steps per second (K x steps / wall time) and the ratio to
``sequential`` at the same K, measured in the same run; compile time is
reported apart; each time is the median of several repeats after a warm-up
call, with the variants interleaved so machine noise hits them alike (the
ratio of the fastest repeats, the least disturbed, is given too).

Usage::

  python benchmarks/sweep_throughput.py                 # K = 1 and 4, batch 128
  python benchmarks/sweep_throughput.py --ks 1,4,8 --json out.json
  python benchmarks/sweep_throughput.py --quick         # a smoke test
"""

from __future__ import annotations

import argparse
import functools
import json
import pathlib
import sys
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

import timing

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "fashion_mnist"
sys.path.insert(0, str(EXAMPLE))

import sweep  # noqa: E402  pylint: disable=wrong-import-position
import train  # noqa: E402  pylint: disable=wrong-import-position

VARIANTS = ("sequential", "unroll", "map", "vmap")
RATES = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)  # the first K are used


def _batches(batch_size: int, count: int) -> list[dict[str, jax.Array]]:
  """`count` distinct synthetic batches, already on the device."""
  rng = np.random.default_rng(0)
  return [jax.device_put({
      "image": rng.integers(0, 256, (batch_size, 28, 28), dtype=np.uint8),
      "label": rng.integers(0, 10, batch_size).astype(np.int32),
      "weight": np.ones(batch_size, np.float32),
  }) for _ in range(count)]


def _variants(k: int, batches: list[Any]) -> dict[str, tuple[Any, float]]:
  """variant -> (a function running N steps on `batches`, compile seconds)."""
  config = train.Config(schedule="cosine", batch_size=len(batches[0]["label"]))
  stacked = sweep.stack_plans(sweep.lr_sweep(config, RATES[:k]))
  graphdef, state = sweep.init_state(config, stacked.plans)
  out = {}

  def loop(fn, state):
    def run():
      s = state
      for b in batches:
        s, m = fn(s, b)
      return s, m
    return run

  # sequential: train.py's step on configuration k's own slice of the stacked state
  pieces = [jax.tree.map(lambda x, i=i: x[i], state) for i in range(k)]
  step, compile_s = timing.compiled(functools.partial(train.train_step, graphdef),
                                    pieces[0], batches[0])
  runs = [loop(step, p) for p in pieces]
  out["sequential"] = (lambda: [r() for r in runs], compile_s)
  for mode in VARIANTS[1:]:
    step, compile_s = timing.compiled(functools.partial(sweep.train_all, graphdef, mode),
                                      state, batches[0])
    out[mode] = (loop(step, state), compile_s)
  return out


def _time(k: int, batch_size: int, steps: int, repeats: int) -> dict[str, Any]:
  variants = _variants(k, _batches(batch_size, steps))
  times = timing.interleaved({name: run for name, (run, _) in variants.items()}, repeats=repeats)
  out = {}
  for name in VARIANTS:
    t = timing.summary(times[name])
    out[name] = {"config_steps_per_s": k * steps / t["median_s"], "runs_s": t["runs_s"],
                 "best_config_steps_per_s": k * steps / t["min_s"],
                 "compile_s": variants[name][1]}
  base = out["sequential"]
  for r in out.values():
    r["ratio"] = r["config_steps_per_s"] / base["config_steps_per_s"]
    # the fastest repeats: the least disturbed by other processes
    r["best_ratio"] = r["best_config_steps_per_s"] / base["best_config_steps_per_s"]
  return out


def _table(results: dict[int, dict[str, Any]]) -> str:
  rows = ["| K | variant | configuration-steps/s | ratio to sequential | "
          "ratio, fastest repeats | compile (s) |",
          "|---:|---|---:|---:|---:|---:|"]
  for k, res in results.items():
    for name in VARIANTS:
      r = res[name]
      rows.append(f"| {k} | {name} | {r['config_steps_per_s']:.1f} | {r['ratio']:.2f}x | "
                  f"{r['best_ratio']:.2f}x | {r['compile_s']:.1f} |")
  return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  """Runs the benchmark, prints the table and returns the results."""
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--ks", default="1,4", help="numbers of configurations (default: %(default)s)")
  parser.add_argument("--batch-size", type=int, default=128)
  parser.add_argument("--steps", type=int, default=30, help="steps per timed run")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--json", metavar="PATH", help="also write the results here")
  parser.add_argument("--quick", action="store_true",
                      help="K = 1, batch 8, 3 steps: a smoke test, not a measurement")
  args = parser.parse_args(argv)
  try:
    ks = [1] if args.quick else [int(x) for x in args.ks.split(",")]
  except ValueError:
    parser.error(f"--ks: expected integers separated by commas, got {args.ks!r}")
  if not 1 <= min(ks) <= max(ks) <= len(RATES):
    parser.error(f"--ks: each K must be in 1..{len(RATES)}")
  batch_size, steps, repeats = (8, 3, 2) if args.quick else (args.batch_size, args.steps, args.repeats)

  results = {k: _time(k, batch_size, steps, repeats) for k in ks}
  device = jax.devices()[0]
  print(f"sweep throughput: {device.platform} ({device.device_kind}), jax {jax.__version__}; "
        f"LeNet, batch {batch_size}, {steps} steps per run, median of {repeats} repeats; "
        f"auto mode here: {sweep.resolve_mode('auto')}\n")
  print(_table(results))
  report = {
      "quick": args.quick, "device": f"{device.platform} ({device.device_kind})",
      "jax": jax.__version__, "batch_size": batch_size, "steps": steps, "repeats": repeats,
      "auto_mode": sweep.resolve_mode("auto"),
      "results": {str(k): r for k, r in results.items()},
  }
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
  return report


if __name__ == "__main__":
  main(sys.argv[1:])
