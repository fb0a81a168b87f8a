"""The benchmarks' one timing helper: compile apart, then the median of repeats.

Every benchmark times the same way: a jitted function is compiled first
(`compiled`, which reports the compile time apart), then the variants being
compared run interleaved, each once per repeat, so that machine noise hits
them alike (`interleaved`), every result waited for with
`jax.block_until_ready`; a variant's figure is the median over the repeats
(`summary`), next to its fastest repeat (the least disturbed). Ratios are
taken between variants of the same run.

  step, compile_s = timing.compiled(train_step, state, batch)
  times = timing.interleaved({"a": lambda: step(state, batch), "b": ...}, repeats=15)
  timing.summary(times["a"], per=steps)["median_s"]
"""

from __future__ import annotations

import importlib
import os
import pathlib
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax


def compiled(fn: Callable, *args: Any, **jit_kwargs: Any) -> tuple[Callable, float]:
  """``jax.jit(fn, **jit_kwargs)`` lowered and compiled for `args`, and the seconds it took.

  The compiled function takes the non-static arguments only (as
  ``jax.stages.Compiled`` does).
  """
  t0 = time.perf_counter()
  out = jax.jit(fn, **jit_kwargs).lower(*args).compile()
  return out, time.perf_counter() - t0


def interleaved(runs: Mapping[str, Callable[[], Any]], *, repeats: int, warmup: bool = True,
                pause_s: float = 0.0) -> dict[str, list[float]]:
  """Seconds of each call of each run, the runs taking turns `repeats` times.

  Args:
    runs: name -> a function of no arguments; what it returns is waited for
      (`jax.block_until_ready`) inside the timed span.
    repeats: how many times each run is timed.
    warmup: call each run once, untimed, first.
    pause_s: sleep this long before each timed call (lets one library's
      spinning threads settle before another's run).

  Returns:
    name -> the `repeats` wall times, in seconds, in the order taken.
  """
  if warmup:
    for run in runs.values():
      jax.block_until_ready(run())
  times: dict[str, list[float]] = {name: [] for name in runs}
  for _ in range(repeats):
    for name, run in runs.items():
      if pause_s:
        time.sleep(pause_s)
      t0 = time.perf_counter()
      jax.block_until_ready(run())
      times[name].append(time.perf_counter() - t0)
  return times


def summary(times: Sequence[float], *, per: int = 1) -> dict[str, Any]:
  """The median and the fastest of `times`, divided by `per` (e.g. steps per call).

  Returns:
    ``median_s``, ``min_s`` and ``runs_s`` (every time divided by `per`).
  """
  runs = [t / per for t in times]
  return {"median_s": statistics.median(runs), "min_s": min(runs), "runs_s": runs}


def per_step_us(times: Sequence[float], *, per: int) -> dict[str, Any]:
  """`summary` in microseconds per step: ``us_per_step`` (the median),
  ``min_us_per_step`` and ``runs_us``."""
  t = summary(times, per=per)
  return {"runs_us": [x * 1e6 for x in t["runs_s"]], "us_per_step": t["median_s"] * 1e6,
          "min_us_per_step": t["min_s"] * 1e6}


def machine() -> str:
  """The processor and the number of CPU cores this process may use."""
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  return f"{platform.processor() or platform.machine()}, {cores} CPU cores"


EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "fashion_mnist"


def import_example(script: str, *modules: str) -> list[Any]:
  """The Fashion-MNIST example's `modules`, imported from its folder; a
  missing example ends `script` with one line."""
  if not (EXAMPLE / "train.py").exists():
    raise SystemExit(f"{script}: {EXAMPLE / 'train.py'} not found; "
                     "this benchmark runs the Fashion-MNIST example")
  if str(EXAMPLE) not in sys.path:
    sys.path.insert(0, str(EXAMPLE))
  return [importlib.import_module(m) for m in modules]
