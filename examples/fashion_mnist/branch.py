"""Cooldown branches from one run (``--branch E1,E2,... --cooldown-epochs N``).

One run under the config's schedule goes to the last branch point, in
``WORKDIR/base`` (stopped at each ``E_i`` and resumed, so its history is one
run's). From the state saved at the end of each epoch ``E_i`` a branch cools
down from the rate in effect there to 0 over N epochs (`lrjax.cooldown` of the
run's schedule, swapped into the state), and the K branches train together
(`train.fit`, as a sweep), each in ``WORKDIR/branch-E_i``, its history whole.
"""

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
  """Trains the run to ``points[-1]`` and, from each point, a cooldown of
  `cooldown_epochs` of the given `shape` (`lrjax.cooldown`), the K branches
  together (`mode`: `sweep.resolve_mode`); ``config.epochs`` sets the named
  schedule's length. Returns the rows of the table, also printed and
  written to ``branches.{md,csv,png}`` in `workdir`.
  """
  check_branches(points, cooldown_epochs, config.epochs)
  mode, workdir = sweep.resolve_mode(mode), pathlib.Path(workdir)
  start = time.perf_counter()
  transforms: dict = {}
  epoch, bases = itertools.count(1), []  # the base run's epochs, across its resumes
  for i, e in enumerate(points):
    base = train.train_and_evaluate(
        dataclasses.replace(config, resume=i > 0), workdir / "base", transforms=transforms,
        name="base", stop=lambda e=e: next(epoch) >= e)
    if base.diverged:
      raise reporting.OutputError(f"the base run {base.failure}")
    bases.append(base)
  data = train.put_on_device(config, input_pipeline.load(config.data_dir))
  spe = train.steps_per_epoch(config, len(data.train["label"]))
  plan = schedules.make_plan(config, spe)
  graphdef, _ = train.create_train_state(train.create_model(config), config, plan, transforms)
  names = [f"branch-{e}" for e in points]
  runs = [reporting.Run(workdir / name, name=name) for name in names]
  states = []
  with contextlib.ExitStack() as outputs:
    for run, base, e in zip(runs, bases, points):
      cooled = lrjax.cooldown(plan.schedule, start=e * spe, decay_steps=cooldown_epochs * spe,
                              shape=shape)
      model, opt = nnx.merge(graphdef, base.state)  # the schedule's structure changes:
      opt.opt_state = lrjax.set_hyperparams(opt.opt_state, learning_rate=cooled)  # in opt_state
      graphdef_k, state = nnx.split((model, opt))
      record = train.record(dataclasses.replace(config, epochs=e + cooldown_epochs),
                            dataclasses.replace(plan, schedule=cooled), spe, data)
      run.start(state, record | {"history": list(base.history[:e])})
      outputs.enter_context(run)
      states.append(jax.device_put(run.state, data.replicated))
    train.fit(config, graphdef_k, states, runs, data, range(cooldown_epochs),
              plateau=plan.plateau is not None, vmap=mode == "vmap", offsets=points)
  for run, e in zip(runs, points):
    if not run.diverged:
      run.finish(f"{reporting.schedule_label(config.schedule)} cooled at {e}")
  wall_s = time.perf_counter() - start
  k, n = len(points), cooldown_epochs
  return reporting.write_table(workdir, dict(zip(names, runs)), "branches", "branch", (
      f"{k} branches by `{mode}`: {points[-1] + k * n} epochs trained (the run to epoch "
      f"{points[-1]}, then {k} x {n}) against {sum(points) + k * n} for {k} separate runs; "
      f"{wall_s:.1f} s wall time"))
