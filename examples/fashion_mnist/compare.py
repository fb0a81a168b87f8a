"""Several schedules compared (``--compare``).

One `train.train_and_evaluate` run each, `jobs` at a time in threads (on a CPU
two runs fill the cores one leaves idle); one table and one plot.
"""

import concurrent.futures
import dataclasses
import pathlib
import threading
import time
from typing import Any

import jax

import reporting
import train


def resolve_jobs(jobs: int | str) -> int:
  """How many runs `compare` trains at once: `jobs` (an integer >= 1, or its
  digits), or for ``"auto"`` 2 on a CPU in one process, else 1. Above 1 in one
  process only: the processes of a multi-process run must run the same
  programs in the same order (`main` refuses ``--jobs`` with ``--distributed``).

  Raises:
    ValueError: if `jobs` is neither ``"auto"`` nor an integer >= 1.
  """
  if jobs == "auto":
    return 2 if jax.default_backend() == "cpu" and jax.process_count() == 1 else 1
  n = int(jobs) if isinstance(jobs, str) and jobs.isdigit() else jobs
  if isinstance(n, bool) or not isinstance(n, int) or n < 1:
    raise ValueError(f"jobs must be 'auto' or an integer >= 1, got {n!r}")
  return n


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
  transforms = {}  # shared: runs whose schedules share a structure share one trace
  stop = threading.Event()

  def run(name: str, s: str | dict[str, Any]) -> train.Result:
    if jobs == 1 and jax.process_index() == 0:  # only process 0 prints, as train_and_evaluate
      print(f"== {name} ==", flush=True)
    c = dataclasses.replace(config, schedule=s, progress=config.progress and jobs == 1)
    return train.train_and_evaluate(c, workdir / name, transforms=transforms,
                                    name=name if jobs > 1 else None, stop=stop.is_set)

  start = time.perf_counter()
  with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
    futures = [pool.submit(run, name, s) for name, s in named.items()]
    try:
      for f in concurrent.futures.as_completed(futures):
        f.result()  # raises a failed run's exception at once
    except BaseException:  # a failed run or an interrupt: the others end after their epoch
      stop.set()
      pool.shutdown(cancel_futures=True)
      raise
  wall_s = time.perf_counter() - start
  return reporting.write_table(workdir, dict(zip(named, (f.result() for f in futures))),
                               "comparison", "schedule",
                               f"{len(named)} runs, {jobs} at a time: {wall_s:.1f} s wall time")
