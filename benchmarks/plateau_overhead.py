"""Per-step cost of `lrjax.reduce_on_plateau` against plain SGD and optax's.

Each variant runs N optimizer steps inside one jitted `lax.scan` (so Python
dispatch does not dominate) on a least-squares model whose parameters are one
float32 vector, 0.5 * ||params - target||^2. Rows:

* ``sgd``: ``optax.sgd(lr)``, the baseline;
* ``sgd + lrjax plateau, value=``: ``optax.chain(optax.sgd(lr),
  lrjax.reduce_on_plateau())`` fed ``value=`` on every update;
* ``sgd + lrjax plateau, no value``: the same, fed no value (the per-epoch
  style: each step only applies the scale);
* ``sgd + optax plateau, value=``: ``optax.chain(optax.sgd(lr),
  optax.contrib.reduce_on_plateau())`` (it demands ``value=``).

``--step update`` (default) times the optimizer step: the gradient is the
model's (``params - target``) and the monitored value comes from a
precomputed metric sequence, as a validation metric would (every variant
reads it and carries it out of the scan, used or not). ``--step train``
times a whole training step instead: ``jax.value_and_grad`` of the loss,
the loss passed as ``value=`` and carried out of the scan.

What ``value=`` costs on XLA:CPU: one observation is one small fused kernel
plus a copy of the transform's 6-float state (it cannot be updated in
place), whatever the settings. At 1,024 parameters a step is only a handful
of kernels, so those two show. XLA:CPU also runs a loop body of at most 8
kernels in order and a longer one through its concurrent executor, which
costs several times more per kernel: ``--step train`` goes from 6 kernels
(sgd) to 9 here, so its ratio mostly measures that switch. A real model's
step has more kernels than that already, and the cost falls to a few
percent.

Compile time is reported apart; each time is the median of several repeats
after a warm-up call, with the variants interleaved so machine noise hits
them alike. Ratios are to ``sgd`` measured in the same run.

Usage::

  python benchmarks/plateau_overhead.py                 # the full table
  python benchmarks/plateau_overhead.py --step train
  python benchmarks/plateau_overhead.py --json out.json
  python benchmarks/plateau_overhead.py --quick         # a smoke test
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import lrjax
import timing

LEARNING_RATE = 1e-3
SIZES = (1024, 1_048_576)
QUICK_SIZES = (64, 4096)
# Steps per timed scan: enough that one scan takes milliseconds.
STEPS = {1024: 20_000, 1_048_576: 200}
QUICK_STEPS = 50

VARIANTS: dict[str, tuple[Callable[[], optax.GradientTransformation], bool]] = {
    "sgd": (lambda: optax.sgd(LEARNING_RATE), False),
    "sgd + lrjax plateau, value=": (
        lambda: optax.chain(optax.sgd(LEARNING_RATE), lrjax.reduce_on_plateau()),
        True,
    ),
    "sgd + lrjax plateau, no value": (
        lambda: optax.chain(optax.sgd(LEARNING_RATE), lrjax.reduce_on_plateau()),
        False,
    ),
    "sgd + optax plateau, value=": (
        lambda: optax.chain(
            optax.sgd(LEARNING_RATE), optax.contrib.reduce_on_plateau()
        ),
        True,
    ),
}


def _metric_sequence(n: int) -> np.ndarray:
  """A validation-like metric: decreasing, noisy, flattening out."""
  rng = np.random.default_rng(0)
  t = np.arange(n, dtype=np.float64)
  return (1.0 / (1.0 + t / 50.0) + 0.05 * rng.random(n)).astype(np.float32)


def _build(tx: optax.GradientTransformation, use_value: bool, step: str) -> Callable:
  """A function (params, opt_state, target, metrics) -> the final carry."""

  def run(params, opt_state, target, metrics):
    def loss_fn(p):
      return 0.5 * jnp.sum((p - target) ** 2)

    def body(carry, metric):
      params, opt_state, loss = carry
      if step == "train":
        loss, grads = jax.value_and_grad(loss_fn)(params)
        metric = loss
      else:
        grads = params - target
        loss = metric  # every variant receives the metric, used or not
      if use_value:
        updates, opt_state = tx.update(grads, opt_state, params, value=metric)
      else:
        updates, opt_state = tx.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state, loss), None

    carry = (params, opt_state, jnp.zeros((), jnp.float32))
    return jax.lax.scan(body, carry, metrics)[0]

  return run


def _time_variants(size: int, n: int, repeats: int, step: str) -> dict[str, Any]:
  params = jnp.zeros((size,), jnp.float32)
  target = jnp.linspace(-1.0, 1.0, size, dtype=jnp.float32)
  metrics = jnp.asarray(_metric_sequence(n))
  runs, out = {}, {}
  for name, (make, use_value) in VARIANTS.items():
    tx = make()
    opt_state = tx.init(params)
    fn, compile_s = timing.compiled(_build(tx, use_value, step), params, opt_state, target, metrics)
    runs[name] = lambda fn=fn, opt_state=opt_state: fn(params, opt_state, target, metrics)
    out[name] = {"compile_s": compile_s}
  times = timing.interleaved(runs, repeats=repeats)
  for name, r in out.items():
    r.update(timing.per_step_us(times[name], per=n))
  for r in out.values():
    r["ratio"] = r["us_per_step"] / out["sgd"]["us_per_step"]
    # the fastest repeat: the least disturbed by other processes
    r["min_ratio"] = r["min_us_per_step"] / out["sgd"]["min_us_per_step"]
  return out


def _table(results: dict[int, dict[str, Any]], sizes: Sequence[int]) -> str:
  head = "| variant |" + "".join(
      f" {s:,} params µs/step | ratio |" for s in sizes
  )
  rule = "|---|" + "---:|---:|" * len(sizes)
  rows = [head, rule]
  for name in VARIANTS:
    cells = "".join(
        f" {results[s][name]['us_per_step']:.3f} | {results[s][name]['ratio']:.2f}x |"
        for s in sizes
    )
    rows.append(f"| {name} |{cells}")
  return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  """Runs the benchmark, prints the table and returns the results."""
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--step", choices=("update", "train"), default="update",
                      help="time the optimizer step (default) or a whole train step")
  parser.add_argument("--repeats", type=int, default=15)
  parser.add_argument("--json", metavar="PATH", help="also write the results here")
  parser.add_argument("--quick", action="store_true",
                      help="tiny sizes and few steps: a smoke test, not a measurement")
  args = parser.parse_args(argv)

  sizes = QUICK_SIZES if args.quick else SIZES
  repeats = 2 if args.quick else args.repeats
  results = {}
  steps = {}
  for size in sizes:
    steps[size] = QUICK_STEPS if args.quick else STEPS[size]
    results[size] = _time_variants(size, steps[size], repeats, args.step)

  device = jax.devices()[0]
  print(
      f"reduce_on_plateau overhead, --step {args.step}: {device.platform} "
      f"({device.device_kind}), jax {jax.__version__}, optax {optax.__version__}; "
      f"median of {repeats} repeats; steps per scan {steps}\n"
  )
  print(_table(results, sizes))
  print("\ncompile time (s): " + "; ".join(
      f"{s:,}: " + ", ".join(
          f"{name} {results[s][name]['compile_s']:.2f}" for name in VARIANTS
      )
      for s in sizes
  ))

  report = {
      "step": args.step,
      "quick": args.quick,
      "device": f"{device.platform} ({device.device_kind})",
      "jax": jax.__version__,
      "optax": optax.__version__,
      "repeats": repeats,
      "steps_per_scan": {str(s): n for s, n in steps.items()},
      "results": {
          str(s): {
              name: {k: r[k] for k in ("us_per_step", "ratio", "min_us_per_step",
                                       "min_ratio", "compile_s", "runs_us")}
              for name, r in results[s].items()
          }
          for s in sizes
      },
  }
  if args.json:
    with open(args.json, "w") as f:
      json.dump(report, f, indent=2)
  return report


if __name__ == "__main__":
  main(sys.argv[1:])
