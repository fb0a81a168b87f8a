"""Several schedules compared, run by run (``--compare``).

`compare(config, named, workdir, jobs)` runs each schedule with
`train.train_and_evaluate` in ``workdir/<name>``, `jobs` runs at a time (in
threads: on a CPU two runs fill the cores one leaves idle), the runs whose
schedules share a structure sharing one optimizer transform and so one
trace, and writes one table and one plot.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import pathlib
import threading
import time
from typing import Any

import jax
import optax

import reporting
import train


def parse_jobs(jobs: int | str) -> int | str:
  """``"auto"``, or the integer >= 1 that `jobs` is (an int, or its digits).

  Raises:
    ValueError: otherwise, naming `jobs`.
  """
  n = int(jobs) if isinstance(jobs, str) and jobs.isdigit() else jobs
  if n != "auto" and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
    raise ValueError(f"jobs must be 'auto' or an integer >= 1, got {n!r}")
  return n


def resolve_jobs(jobs: int | str) -> int:
  """How many runs `compare` trains at once: ``"auto"`` is 2 on a CPU in one
  process and 1 otherwise.

  Raises:
    ValueError: if `jobs` is neither ``"auto"`` nor an integer >= 1, or is
      above 1 in a multi-process run (whose processes must run the same
      programs in the same order).
  """
  jobs = parse_jobs(jobs)
  if jobs == "auto":
    return 2 if jax.default_backend() == "cpu" and jax.process_count() == 1 else 1
  if jobs > 1 and jax.process_count() > 1:
    raise ValueError(f"jobs: the runs of a multi-process comparison go one at a time, got {jobs}")
  return jobs


def compare(config: train.Config, named: dict[str, str | dict[str, Any]],
            workdir: str | pathlib.Path, jobs: int | str = 1) -> list[dict[str, Any]]:
  """Runs `config` under each schedule and writes one table and one plot.

  Args:
    config: the settings shared by all runs.
    named: run name -> schedule (a name in `schedules.SCHEDULES` or an lrjax
      dict); each run works in ``workdir/<run name>``.
    workdir: where ``comparison.csv``, ``comparison.md`` and
      ``comparison.png`` go.
    jobs: runs trained at once (`resolve_jobs`). Above 1, each run's lines
      start with ``[name]``, the progress bars are off, and an interrupt (or
      a failed run) ends every running run after its current epoch,
      checkpoint written.

  Returns:
    The table's rows (a diverged run's says so); the table is also printed.

  Raises:
    ValueError: if `jobs` is unusable (`resolve_jobs`).
  """
  jobs = min(resolve_jobs(jobs), len(named))
  workdir = pathlib.Path(workdir)
  transforms: dict[Any, optax.GradientTransformation] = {}
  stop = threading.Event()
  main_process = jax.process_index() == 0

  def run(name: str, s: str | dict[str, Any]) -> train.Result:
    if main_process and jobs == 1:  # only process 0 prints (as train_and_evaluate does)
      print(f"== {name} ==", flush=True)
    c = dataclasses.replace(config, schedule=s, progress=config.progress and jobs == 1)
    return train.train_and_evaluate(c, workdir / name, transforms=transforms,
                                    name=name if jobs > 1 else None, stop=stop.is_set)

  start = time.perf_counter()
  with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
    futures = [pool.submit(run, name, s) for name, s in named.items()]
    try:  # an interrupt or a failed run: the others end after their epoch
      concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
      for f in futures:
        if f.done() and f.exception() is not None:
          raise f.exception()
      results = [f.result() for f in futures]
    except BaseException:
      stop.set()
      for f in futures:
        f.cancel()
      raise
  wall_s = time.perf_counter() - start
  rows = [{"schedule": name, **reporting.summarize(r.history, r.diverged),
           "time_s": sum(row["time"] for row in r.history)} for name, r in zip(named, results)]
  if main_process:
    print(reporting.write_comparison(workdir, rows, {n: r.history for n, r in zip(named, results)}))
    print(f"{len(rows)} runs, {jobs} at a time: {wall_s:.1f} s wall time", flush=True)
  return rows
