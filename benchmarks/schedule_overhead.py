"""Per-step cost of every lrjax schedule, against optax's equivalent and a constant rate.

Each variant runs N optimizer updates inside one jitted `lax.scan` (so Python
dispatch does not count) on a model whose parameters are one float32 vector
with the gradient ``params - target`` (so the optimizer, not the model, is what
is timed). The baseline is the same optimizer with a Python float rate
(``optax.sgd(0.1)``), measured in the same run; the schedule is passed to
optax as its ``learning_rate`` (``optax.sgd(lrjax.cosine_decay(...))``), and
the optax equivalent the same way (``optax.sgd(optax.warmup_cosine_decay_
schedule(...))``). Each schedule's parameters are scaled to the scan length,
so a run crosses all its phases.

Columns, for SGD and Adam at 1,024 and 1,048,576 parameters:

* ``×const``: lrjax's time per step over the constant-rate baseline's;
* ``×optax``: lrjax's time per step over its optax equivalent's (where optax
  has one; a ``≈`` marks equivalents whose values differ slightly from lrjax's
  by convention, e.g. where one-cycle's phases end);

then the compile time of lrjax's SGD scan at the larger size, and the cost of
one eager call from Python, ``float(schedule(step))`` with a Python int step
(what logging code does), next to the same call of optax's equivalent and
PyTorch's ``scheduler.step()`` followed by ``scheduler.get_last_lr()`` (when
torch is installed).

Times are medians over ``--repeats`` repeats after a warm-up call, the
variants interleaved within each repeat so machine noise hits them alike;
each scan is about 40 ms long (its length calibrated on the constant-rate
baseline); compile time is measured apart (``benchmarks/timing.py``, the
benchmarks' shared helper). The plateau transform has its own script,
``benchmarks/plateau_overhead.py``.

A second table puts the schedule inside the optimizer state: SGD with
``lrjax.inject_hyperparams(optax.sgd)(learning_rate=cosine_decay(...))``
against ``optax.inject_hyperparams(optax.sgd)(learning_rate=
warmup_cosine_decay_schedule(...))`` (the same curve, a closure in optax) and
against plain ``optax.sgd(warmup_cosine_decay_schedule(...))``, timed in the
same interleaved run as the first table's SGD rows, at each size.

Usage::

  python benchmarks/schedule_overhead.py                # the full table
  python benchmarks/schedule_overhead.py --json out.json
  python benchmarks/schedule_overhead.py --quick        # a smoke test
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import lrjax
import timing

LR = 0.1
SIZES = (1024, 1_048_576)
QUICK_SIZES = (64,)
OPTIMIZERS: dict[str, Callable[[Any], optax.GradientTransformation]] = {
    "sgd": optax.sgd,
    "adam": optax.adam,
}
# Updates per timed scan: chosen so that the baseline's scan takes about
# SCAN_MS (calibrated on the machine), within [MIN_STEPS, MAX_STEPS].
SCAN_MS = 40.0
MIN_STEPS, MAX_STEPS = 20, 200_000
QUICK_STEPS = 20
EAGER_CALLS = 500  # eager calls per timed repeat
QUICK_EAGER_CALLS = 5

# --- the catalogue ------------------------------------------------------------
# name -> (lrjax builder, optax builder or None, optax name, torch builder or
# None). Builders take the horizon T (the scan length); torch builders take
# (optimizer, T). A name lrjax does not export is listed as missing.


def _lrjax(name: str) -> Callable[..., Any]:
  return getattr(lrjax, name)


def _torch_sequential(opt, T, first, second, milestone):
  import torch  # pylint: disable=import-outside-toplevel
  return torch.optim.lr_scheduler.SequentialLR(
      opt, [first(opt), second(opt)], milestones=[milestone])


def _catalogue() -> dict[str, tuple[Any, Any, str, Any]]:
  # pylint: disable=import-outside-toplevel,g-long-lambda
  def ts():
    import torch
    return torch.optim.lr_scheduler

  return {
      "constant": (
          lambda T: _lrjax("constant")(LR),
          lambda T: optax.constant_schedule(LR), "constant_schedule",
          lambda opt, T: ts().LambdaLR(opt, lambda s: 1.0)),
      "step_decay": (
          lambda T: _lrjax("step_decay")(LR, step_size=max(T // 4, 1), gamma=0.5),
          lambda T: optax.exponential_decay(LR, max(T // 4, 1), 0.5, staircase=True),
          "exponential_decay(staircase)",
          lambda opt, T: ts().StepLR(opt, step_size=max(T // 4, 1), gamma=0.5)),
      "multistep": (
          lambda T: _lrjax("multistep")(LR, milestones=[T // 2, 3 * T // 4], gamma=0.1),
          lambda T: optax.piecewise_constant_schedule(LR, {T // 2: 0.1, 3 * T // 4: 0.1}),
          "piecewise_constant_schedule",
          lambda opt, T: ts().MultiStepLR(opt, milestones=[T // 2, 3 * T // 4], gamma=0.1)),
      "piecewise_constant": (
          lambda T: _lrjax("piecewise_constant")(
              boundaries=[T // 3, 2 * T // 3], values=[LR, LR / 2, LR / 10]),
          lambda T: optax.piecewise_constant_schedule(LR, {T // 3: 0.5, 2 * T // 3: 0.2}),
          "piecewise_constant_schedule", None),
      "exponential_decay": (
          lambda T: _lrjax("exponential_decay")(LR, decay_steps=max(T // 10, 1), decay_rate=0.5),
          lambda T: optax.exponential_decay(LR, max(T // 10, 1), 0.5), "exponential_decay",
          lambda opt, T: ts().ExponentialLR(opt, gamma=0.5 ** (1 / max(T // 10, 1)))),
      "inverse_time_decay": (
          lambda T: _lrjax("inverse_time_decay")(LR, decay_steps=max(T // 10, 1), decay_rate=0.5),
          None, "", None),
      "polynomial_decay": (
          lambda T: _lrjax("polynomial_decay")(LR, decay_steps=T, end_value=LR / 100, power=2.0),
          lambda T: optax.polynomial_schedule(LR, LR / 100, 2.0, T), "polynomial_schedule",
          lambda opt, T: ts().PolynomialLR(opt, total_iters=T, power=2.0)),
      "linear": (
          lambda T: _lrjax("linear")(LR, end_value=0.0, steps=T),
          lambda T: optax.linear_schedule(LR, 0.0, T), "linear_schedule",
          lambda opt, T: ts().LinearLR(opt, start_factor=1.0, end_factor=0.01, total_iters=T)),
      "inverse_sqrt": (
          lambda T: _lrjax("inverse_sqrt")(LR, warmup_steps=max(T // 10, 1)), None, "", None),
      "cosine_decay": (
          lambda T: _lrjax("cosine_decay")(
              LR, decay_steps=T - max(T // 10, 1), warmup_steps=max(T // 10, 1)),
          lambda T: optax.warmup_cosine_decay_schedule(0.0, LR, max(T // 10, 1), T),
          "warmup_cosine_decay_schedule",
          lambda opt, T: _torch_sequential(
              opt, T, lambda o: ts().LinearLR(o, 1e-3, 1.0, max(T // 10, 1)),
              lambda o: ts().CosineAnnealingLR(o, T - max(T // 10, 1)), max(T // 10, 1))),
      "cosine_restarts": (
          lambda T: _lrjax("cosine_restarts")(LR, cycle_steps=max(T // 4, 1)),
          lambda T: optax.sgdr_schedule([dict(
              init_value=LR, peak_value=LR, decay_steps=max(T // 4, 1), warmup_steps=0,
              end_value=0.0)] * 4), "sgdr_schedule",
          lambda opt, T: ts().CosineAnnealingWarmRestarts(opt, T_0=max(T // 4, 1))),
      "cyclic": (
          lambda T: _lrjax("cyclic")(base_value=LR / 10, max_value=LR, step_size_up=max(T // 8, 1)),
          None, "",
          lambda opt, T: ts().CyclicLR(opt, LR / 10, LR, step_size_up=max(T // 8, 1),
                                       cycle_momentum=False)),
      "one_cycle": (
          lambda T: _lrjax("one_cycle")(peak_value=LR, total_steps=T),
          lambda T: optax.cosine_onecycle_schedule(T, LR), "cosine_onecycle_schedule",
          # far more steps than timed: OneCycleLR raises past its end
          lambda opt, T: ts().OneCycleLR(opt, max_lr=LR, total_steps=10**9)),
      "warmup_stable_decay": (
          lambda T: _lrjax("warmup_stable_decay")(
              peak_value=LR, warmup_steps=max(T // 10, 1), stable_steps=T // 2,
              decay_steps=max(T // 5, 1)),
          None, "", None),
      "rex": (
          lambda T: _lrjax("rex")(
              LR, decay_steps=T - max(T // 10, 1), warmup_steps=max(T // 10, 1)),
          None, "", None),
      "warmup": (
          lambda T: _lrjax("warmup")(
              _lrjax("exponential_decay")(LR, decay_steps=max(T // 10, 1), decay_rate=0.5),
              steps=max(T // 10, 1)),
          lambda T: optax.join_schedules(
              [optax.linear_schedule(0.0, LR, max(T // 10, 1)),
               optax.exponential_decay(LR, max(T // 10, 1), 0.5)], [max(T // 10, 1)]),
          "join_schedules",
          lambda opt, T: _torch_sequential(
              opt, T, lambda o: ts().LinearLR(o, 1e-3, 1.0, max(T // 10, 1)),
              lambda o: ts().ExponentialLR(o, 0.5 ** (1 / max(T // 10, 1))), max(T // 10, 1))),
      "sequence": (
          lambda T: _lrjax("sequence")(
              [_lrjax("constant")(LR), _lrjax("linear")(LR, end_value=0.0, steps=max(T // 2, 1))],
              boundaries=[T // 2]),
          lambda T: optax.join_schedules(
              [optax.constant_schedule(LR), optax.linear_schedule(LR, 0.0, max(T // 2, 1))],
              [T // 2]),
          "join_schedules",
          lambda opt, T: _torch_sequential(
              opt, T, lambda o: ts().LambdaLR(o, lambda s: 1.0),
              lambda o: ts().LinearLR(o, 1.0, 0.01, max(T // 2, 1)), T // 2)),
      "per_epoch": (
          lambda T: _lrjax("per_epoch")(
              _lrjax("multistep")(LR, milestones=[5, 8], gamma=0.1),
              steps_per_epoch=max(T // 10, 1)),
          None, "", None),
  }


# --- timing -------------------------------------------------------------------


def _scan_fn(tx: optax.GradientTransformation) -> Callable:
  """(params, target) -> params after N updates with gradient params - target."""

  def run(params, opt_state, target, steps):
    def body(carry, _):
      params, opt_state = carry
      updates, opt_state = tx.update(params - target, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), None

    return jax.lax.scan(body, (params, opt_state), None, length=steps)[0]

  return run


def _calibrate(opt_name: str, size: int) -> int:
  """Scan length for which the constant-rate baseline takes about SCAN_MS."""
  params = jnp.zeros((size,), jnp.float32)
  tx = OPTIMIZERS[opt_name](LR)
  opt_state = tx.init(params)
  n = 100
  fn, _ = timing.compiled(_scan_fn(tx), params, opt_state, params, n, static_argnums=3)
  times = timing.interleaved({"baseline": lambda: fn(params, opt_state, params)}, repeats=3)
  per_step_ms = timing.summary(times["baseline"], per=n)["min_s"] * 1e3
  return int(min(max(round(SCAN_MS / per_step_ms, -1), MIN_STEPS), MAX_STEPS))


def _time_scans(variants: dict[str, optax.GradientTransformation], size: int, n: int,
                repeats: int) -> dict[str, dict[str, Any]]:
  """Compiles each optimizer's scan, then times them interleaved."""
  params = jnp.zeros((size,), jnp.float32)
  target = jnp.linspace(-1.0, 1.0, size, dtype=jnp.float32)
  runs, out = {}, {}
  for name, tx in variants.items():
    opt_state = tx.init(params)
    fn, compile_s = timing.compiled(_scan_fn(tx), params, opt_state, target, n,
                                    static_argnums=3)
    runs[name] = lambda fn=fn, opt_state=opt_state: fn(params, opt_state, target)
    out[name] = {"compile_s": compile_s}
  times = timing.interleaved(runs, repeats=repeats)
  for name, r in out.items():
    r.update(timing.per_step_us(times[name], per=n))
  return out


def _time_calls(fn: Callable[[], Any], calls: int, repeats: int) -> float:
  """Median over repeats of the mean time of one call, in microseconds."""

  def loop():
    for _ in range(calls):
      out = fn()
    return out

  times = timing.interleaved({"calls": loop}, repeats=repeats)
  return timing.summary(times["calls"], per=calls)["median_s"] * 1e6


def _eager_lrjax(sched: Any, calls: int, repeats: int) -> float:
  state = [0]

  def call():
    state[0] = (state[0] + 1) % 1000
    return float(sched(state[0]))

  return _time_calls(call, calls, repeats)


def _eager_torch(make: Callable, T: int, calls: int, repeats: int) -> float:
  import torch  # pylint: disable=import-outside-toplevel

  with warnings.catch_warnings():
    # SequentialLR warns about its own internal step(epoch) calls.
    warnings.simplefilter("ignore")
    opt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=LR)
    opt.step()  # so that scheduler.step() does not warn about the order
    sched = make(opt, T)

    def call():
      sched.step()
      return sched.get_last_lr()[0]

    return _time_calls(call, calls, repeats)


def _max_rel_diff(a: Any, b: Any, T: int) -> float:
  steps = np.unique(np.linspace(0, T + 10, 257).astype(np.int32))
  va = np.asarray(jax.vmap(a)(jnp.asarray(steps)), np.float64)
  vb = np.asarray(jax.vmap(b)(jnp.asarray(steps)), np.float64)
  return float(np.max(np.abs(va - vb)) / LR)


# --- the schedule inside the optimizer state -------------------------------------

INJECT_SCHEDULE = "cosine_decay with a 10% warmup"
INJECT_VARIANTS = {
    "inject:lrjax": "lrjax.inject_hyperparams(optax.sgd)(learning_rate=s)",
    "inject:optax": "optax.inject_hyperparams(optax.sgd)(learning_rate=optax_equivalent)",
    "optax:cosine_decay": "optax.sgd(optax_equivalent)",
}


def _inject_variants(n: int) -> dict[str, optax.GradientTransformation]:
  """The two inject_hyperparams variants (plain optax.sgd is the catalogue's)."""
  make_l, make_o, _, _ = _catalogue()["cosine_decay"]
  return {
      "inject:lrjax": lrjax.inject_hyperparams(optax.sgd)(learning_rate=make_l(n)),
      "inject:optax": optax.inject_hyperparams(optax.sgd)(learning_rate=make_o(n)),
      "optax:cosine_decay": optax.sgd(make_o(n)),
  }


def _inject_cell(res: dict[str, dict[str, Any]], n: int) -> dict[str, Any]:
  """The three variants' times per step and lrjax's ratios to the other two."""
  cell: dict[str, Any] = {"steps_per_scan": n}
  for key in INJECT_VARIANTS:
    r = res[key]
    cell[key] = {"us_per_step": r["us_per_step"], "min_us_per_step": r["min_us_per_step"],
                 "compile_s": r["compile_s"], "runs_us": r["runs_us"]}
  ours = res["inject:lrjax"]["us_per_step"]
  cell["x_optax_inject"] = ours / res["inject:optax"]["us_per_step"]
  cell["x_optax_sgd"] = ours / res["optax:cosine_decay"]["us_per_step"]
  cell["min_x_optax_inject"] = (res["inject:lrjax"]["min_us_per_step"]
                                / res["inject:optax"]["min_us_per_step"])
  return cell


def _inject_table(inject: dict[str, dict[str, Any]]) -> str:
  head = ["config", "lrjax.inject_hyperparams µs", "optax.inject_hyperparams µs",
          "optax.sgd(schedule) µs", "×optax.inject", "×optax.sgd",
          "compile lrjax ms", "compile optax.inject ms"]
  lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
  for label, c in inject.items():
    cells = [label] + [_fmt(c[k]["us_per_step"], ".3f") for k in INJECT_VARIANTS]
    cells += [_fmt(c["x_optax_inject"], ".2f", "x"), _fmt(c["x_optax_sgd"], ".2f", "x"),
              _fmt(c["inject:lrjax"]["compile_s"] * 1e3, ".0f"),
              _fmt(c["inject:optax"]["compile_s"] * 1e3, ".0f")]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


# --- the table ----------------------------------------------------------------


def _config_label(opt: str, size: int) -> str:
  return f"{'SGD' if opt == 'sgd' else 'Adam'} {size:,}"


def _fmt(x: float | None, spec: str = ".2f", suffix: str = "") -> str:
  return "—" if x is None else f"{x:{spec}}{suffix}"


def _table(report: dict[str, Any]) -> str:
  configs = report["configs"]
  head = ["schedule", "optax equivalent"]
  for c in configs:
    head += [f"{c} ×const", f"{c} ×optax"]
  head += ["compile (ms)", "eager µs", "optax eager µs", "torch step() µs"]
  lines = ["| " + " | ".join(head) + " |",
           "|---|---|" + "---:|" * (len(head) - 2)]
  for name, row in report["schedules"].items():
    if row.get("missing"):
      lines.append(f"| {name} | (missing from lrjax {report['lrjax']}) |"
                   + " — |" * (len(head) - 2))
      continue
    optax_name = row["optax"] or "—"
    if row["optax"] and row["optax_max_rel_diff"] > 1e-5:
      optax_name += " ≈"
    cells = [name, optax_name]
    for c in configs:
      r = row["scan"][c]
      cells += [_fmt(r["x_const"], ".2f", "x"), _fmt(r.get("x_optax"), ".2f", "x")]
    cells += [_fmt(row["compile_ms"], ".0f"), _fmt(row["eager_us"], ".1f"),
              _fmt(row["optax_eager_us"], ".1f"), _fmt(row["torch_eager_us"], ".1f")]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  """Runs the benchmark, prints the table and returns the results."""
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--repeats", type=int, default=15)
  parser.add_argument("--schedules", metavar="A,B,...",
                      help="only these schedules (default: the whole catalogue)")
  parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch column")
  parser.add_argument("--json", metavar="PATH", help="also write the results here")
  parser.add_argument("--quick", action="store_true",
                      help="SGD only, tiny sizes and few steps: a smoke test, not a measurement")
  args = parser.parse_args(argv)

  catalogue = _catalogue()
  names = list(catalogue)
  if args.schedules:
    names = [s.strip() for s in args.schedules.split(",") if s.strip()]
    unknown = [s for s in names if s not in catalogue]
    if unknown:
      parser.error(f"unknown schedules {unknown}; known: {', '.join(catalogue)}")
  sizes = QUICK_SIZES if args.quick else SIZES
  opts = ("sgd",) if args.quick else tuple(OPTIMIZERS)
  repeats = 2 if args.quick else args.repeats
  calls = QUICK_EAGER_CALLS if args.quick else EAGER_CALLS
  torch_version = None
  if not args.no_torch:
    try:
      import torch  # pylint: disable=import-outside-toplevel
      torch_version = torch.__version__
    except ImportError:
      pass

  rows: dict[str, dict[str, Any]] = {}
  for name in names:
    make_l, _, optax_name, _ = catalogue[name]
    try:
      make_l(100)
      missing = None
    except AttributeError as e:  # lrjax does not (yet) export a name it needs
      missing = str(e)
    rows[name] = {"missing": missing, "optax": optax_name or None, "scan": {}}

  configs = []
  steps_per_scan, baselines, inject = {}, {}, {}
  for opt in opts:
    for size in sizes:
      label = _config_label(opt, size)
      configs.append(label)
      n = QUICK_STEPS if args.quick else _calibrate(opt, size)
      steps_per_scan[label] = n
      make_tx = OPTIMIZERS[opt]
      variants: dict[str, Any] = {"baseline": make_tx(LR)}
      for name in names:
        if rows[name]["missing"]:
          continue
        make_l, make_o, _, _ = catalogue[name]
        variants[f"lrjax:{name}"] = make_tx(make_l(n))
        if make_o is not None:
          variants[f"optax:{name}"] = make_tx(make_o(n))
      if opt == "sgd":
        variants.update(_inject_variants(n))
      res = _time_scans(variants, size, n, repeats)
      if opt == "sgd":
        inject[label] = _inject_cell(res, n)
      base = res["baseline"]["us_per_step"]
      for name in names:
        row = rows[name]
        if row["missing"]:
          continue
        r = res[f"lrjax:{name}"]
        cell = {"us_per_step": r["us_per_step"], "min_us_per_step": r["min_us_per_step"],
                "x_const": r["us_per_step"] / base, "compile_s": r["compile_s"],
                "baseline_us_per_step": base, "runs_us": r["runs_us"]}
        if f"optax:{name}" in res:
          o = res[f"optax:{name}"]
          cell.update(optax_us_per_step=o["us_per_step"], optax_x_const=o["us_per_step"] / base,
                      x_optax=r["us_per_step"] / o["us_per_step"], optax_runs_us=o["runs_us"])
        row["scan"][label] = cell
      baselines[label] = {"us_per_step": base, "runs_us": res["baseline"]["runs_us"]}

  compile_label = [c for c in configs if c.startswith("SGD")][-1]  # the largest SGD scan
  for name in names:
    row = rows[name]
    row["compile_ms"] = row["eager_us"] = row["optax_eager_us"] = row["torch_eager_us"] = None
    row["optax_max_rel_diff"] = None
    if row["missing"]:
      continue
    make_l, make_o, _, make_t = catalogue[name]
    T = 1000
    row["compile_ms"] = row["scan"][compile_label]["compile_s"] * 1e3
    row["eager_us"] = _eager_lrjax(make_l(T), calls, repeats)
    if make_o is not None:
      row["optax_eager_us"] = _eager_lrjax(make_o(T), max(calls // 20, 2), repeats)
      row["optax_max_rel_diff"] = _max_rel_diff(make_l(T), make_o(T), T)
    if torch_version and make_t is not None:
      row["torch_eager_us"] = _eager_torch(make_t, T, calls, repeats)

  device = jax.devices()[0]
  report = {
      "quick": args.quick,
      "machine": timing.machine(),
      "device": f"{device.platform} ({device.device_kind})",
      "jax": jax.__version__, "optax": optax.__version__,
      "lrjax": lrjax.__version__, "torch": torch_version,
      "repeats": repeats, "steps_per_scan": steps_per_scan, "configs": configs,
      "baselines": baselines,
      "compile_config": compile_label, "learning_rate": LR,
      "schedules": rows,
      "inject": inject,
  }
  print(f"Schedule overhead: {report['device']}, {report['machine']}; jax {jax.__version__}, "
        f"optax {optax.__version__}, torch {torch_version or 'not installed'}; "
        f"median of {repeats} repeats.")
  print("Constant-rate baseline, µs per step: " + "; ".join(
      f"{c} {baselines[c]['us_per_step']:.3f}" for c in configs)
      + f". Compile time: lrjax's {compile_label} scan.\n")
  print(_table(report))
  print(f"\nThe schedule inside the optimizer state: SGD with {INJECT_SCHEDULE}, "
        "timed in the same run as the table above (µs per step).\n")
  print(_inject_table(inject))
  missing = [n for n, r in rows.items() if r["missing"]]
  if missing:
    print(f"\nNot exported by this lrjax: {', '.join(missing)}.")
  print("\n≈: optax's equivalent differs slightly in value (its own conventions). "
        "The plateau transform: benchmarks/plateau_overhead.py.")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(report, f, indent=1)
  return report


if __name__ == "__main__":
  main(sys.argv[1:])
