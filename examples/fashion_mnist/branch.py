"""Cooldown branches from one run (``--branch E1,E2,... --cooldown-epochs N``).

One run under the config's schedule goes to the last branch point (in
``WORKDIR/base``, as a single run; the epochs ``E_i`` reached in turn by
`train.train_and_evaluate`'s ``stop`` and ``resume``, so its history is one
run's). From the state saved at the end of each epoch ``E_i`` a branch cools
down from the rate in effect there to 0 over the next N epochs' steps
(`lrjax.cooldown` of the run's schedule, swapped into the state by
`lrjax.set_hyperparams`), and the K branches train together with the sweep
machinery (`sweep.programs`), each on its own epochs' batches. Each branch
writes its outputs as a ``--compare`` run does, in ``WORKDIR/branch-E_i``,
its history whole (the shared epochs first).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import itertools
import pathlib
import time
from collections.abc import Sequence
from typing import Any

import jax
from flax import nnx

import lrjax

import input_pipeline
import reporting
import schedules
import sweep
import train
from configs import default

SHAPES = ("1-sqrt", "linear", "cosine")


def check_branches(points: Sequence[int], cooldown_epochs: int, epochs: int) -> None:
  """Raises ValueError, naming the flag, for branch points no run can use."""
  if not points:
    raise ValueError("--branch: expected epochs separated by commas, got none")
  if list(points) != sorted(set(points)) or points[0] < 1:
    raise ValueError(f"--branch: expected increasing epochs >= 1, got {','.join(map(str, points))}")
  if points[-1] > epochs:
    raise ValueError(f"--branch: epoch {points[-1]} is past --epochs {epochs}")
  if cooldown_epochs < 1:
    raise ValueError(f"--cooldown-epochs must be an integer >= 1, got {cooldown_epochs}")


def branch(config: train.Config, points: Sequence[int], cooldown_epochs: int,
           workdir: str | pathlib.Path, *, shape: str = "1-sqrt",
           mode: str = "auto") -> list[dict[str, Any]]:
  """Trains the run to ``points[-1]`` and the K cooldown branches from it.

  Args:
    config: the run (its ``epochs`` sets the named schedule's length).
    points: the branch epochs ``E_i``, increasing, at most ``config.epochs``.
    cooldown_epochs: N, each branch's epochs.
    workdir: ``base/``, ``branch-E_i/`` and ``branches.{md,csv,png}`` go there.
    shape: the cooldown's (`lrjax.cooldown`).
    mode: how the K branches train (`sweep.resolve_mode`).

  Returns:
    The table's rows (one per branch); the table is also printed.
  """
  check_branches(points, cooldown_epochs, config.epochs)
  mode, workdir = sweep.resolve_mode(mode), pathlib.Path(workdir)
  start = time.perf_counter()
  transforms: dict = {}
  bases, done = [], 0
  for i, e in enumerate(points):
    base = train.train_and_evaluate(
        dataclasses.replace(config, resume=i > 0), workdir / "base", transforms=transforms,
        name="base", stop=lambda c=itertools.count(done + 1), e=e: next(c) >= e)
    if base.diverged:
      raise reporting.OutputError(f"the base run {base.failure}")
    bases.append(base)
    done = e
  ds = input_pipeline.load(config.data_dir)
  spe = train.steps_per_epoch(config, len(ds["train_images"]))
  plan = schedules.make_plan(config, spe)
  graphdef, _ = train.create_train_state(train.create_model(config), config, plan, transforms)
  names = [f"branch-{e}" for e in points]
  runs = [reporting.Run(workdir / name, name=name) for name in names]
  states, data = [], train.put_on_device(config, ds)
  with contextlib.ExitStack() as outputs:
    for run, base, e in zip(runs, bases, points):
      cooled = lrjax.cooldown(plan.schedule, start=e * spe, decay_steps=cooldown_epochs * spe,
                              shape=shape)
      model, opt = nnx.merge(graphdef, base.state)  # the schedule's structure changes:
      opt.opt_state = lrjax.set_hyperparams(opt.opt_state, learning_rate=cooled)  # in opt_state
      graphdef_k, state = nnx.split((model, opt))
      run.start(state, {
          "config": default.trajectory(config) | {"epochs": e + cooldown_epochs},
          "schedule": cooled.to_dict(), "plateau": plan.plateau, "steps_per_epoch": spe,
          "train_size": len(data.train["label"]), "test_size": len(data.test["label"]),
          "devices": [str(d) for d in jax.devices()], "history": list(base.history[:e])})
      outputs.enter_context(run)
      states.append(jax.device_put(run.state, data.replicated))
    with concurrent.futures.ThreadPoolExecutor(len(runs)) as pool:
      progs = sweep.programs(mode, graphdef_k, states, data, plan.plateau is not None, pool)
      train.fit(config, progs, runs, data, range(cooldown_epochs), offsets=points)
  for run, e in zip(runs, points):
    if not run.diverged:
      run.finish(f"{reporting.schedule_label(config.schedule)} cooled at {e}")
  wall_s = time.perf_counter() - start
  rows = [{"branch": name, **reporting.summarize(r.history, r.diverged)}
          for name, r in zip(names, runs)]
  table = reporting.write_comparison(workdir, rows, {n: r.history for n, r in zip(names, runs)},
                                     "branches", "branch")
  k, n = len(points), cooldown_epochs
  trained, separate = points[-1] + k * n, sum(points) + k * n
  summary = (f"{k} branches by `{mode}`: {trained} epochs trained (the run to epoch "
             f"{points[-1]}, then {k} x {n}) against {separate} for {k} separate runs; "
             f"{wall_s:.1f} s wall time")
  if jax.process_index() == 0:
    reporting.write_text(workdir / "branches.md", f"{table}\n\n{summary}\n")
    print(f"{table}\n\n{summary}", flush=True)
  return rows
