"""Several schedules: compared run by run, or swept as one.

`compare(config, named, workdir, jobs)` runs each schedule with
`train.train_and_evaluate`, `jobs` runs at a time (in threads; each run its
own compiled programs and outputs), the runs whose schedules share a
structure sharing one optimizer transform and so one trace, and writes one
table.

`sweep(configs, workdir, mode)` trains K LeNets, one per configuration, on
the same batches of the same epochs, with train.py's own chunk of steps
(`train.train_steps`) and one table for all K. The K schedules live in
the optimizer states (`lrjax.inject_hyperparams`: one transform, each
configuration's schedules swapped in by `lrjax.set_hyperparams`). The K
configurations run one of four ways: ``threads`` (K states, the chunk
compiled once and run for all K at the same time from a thread pool),
``vmap`` (`jax.vmap` over K stacked states: one batched program), ``unroll``
(K copies of the chunk in one program) or ``map`` (a loop over k inside one
program, as `jax.lax.map`). ``auto`` picks ``threads`` on CPU and ``vmap``
elsewhere (see `resolve_mode` for the measurement behind it). The K models
start from the same parameters (the config's seed), so they differ by their
schedule alone.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import functools
import json
import pathlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

import input_pipeline
import reporting
import schedules
import train

# How many times each jitted function was traced in this process: a sweep
# traces (so compiles) its train and eval programs once for all K configurations.
TRACES: collections.Counter[str] = collections.Counter()

MODES = ("auto", "threads", "vmap", "unroll", "map")


def resolve_mode(mode: str) -> str:
  """The mode to run: ``auto`` is ``threads`` on CPU and ``vmap`` elsewhere.

  Measured on a 2-core CPU with the model the CPU runs (`LeNetPatches`,
  batch 128, chunks of 67 steps, benchmarks/sweep_throughput.py; see the
  example's README): one run keeps on average about 1.3 of the 2 cores in
  an op (benchmarks/step_profile.py: the executor between its 153 ops, the
  small ones on one core), so K programs run at the same time from K threads
  fill the gaps and ran at 1.2-1.5x the speed of K sequential runs, with
  results equal to them bit for bit (the same compiled program). One
  program for all K was no faster than the runs one after another
  (0.92-1.04x): ``map`` runs one configuration's steps at a time, ``vmap``
  and ``unroll`` move K times the patch matrices through the caches at once.
  On GPU and TPU, ``vmap`` turns K small steps into one larger one.

  Raises:
    ValueError: if `mode` is not one of `MODES`.
  """
  if mode not in MODES:
    raise ValueError(f"sweep mode must be one of {', '.join(MODES)}, got {mode!r}")
  if mode == "auto":
    return "threads" if jax.default_backend() == "cpu" else "vmap"
  return mode


def parse_jobs(jobs: int | str) -> int | str:
  """``"auto"``, or the integer >= 1 that `jobs` is (an int, or its digits).

  Raises:
    ValueError: otherwise, naming `jobs`.
  """
  if jobs == "auto":
    return jobs
  n = jobs
  if isinstance(jobs, str):
    try:
      n = int(jobs)
    except ValueError:
      n = jobs
  if isinstance(n, bool) or not isinstance(n, int) or n < 1:
    raise ValueError(f"jobs must be 'auto' or an integer >= 1, got {n!r}")
  return n


def resolve_jobs(jobs: int | str) -> int:
  """How many runs `compare` trains at once: ``"auto"`` is 2 on a CPU in one
  process (for the reason in `resolve_mode`) and 1 otherwise.

  Raises:
    ValueError: if `jobs` is neither ``"auto"`` nor an integer >= 1
      (`parse_jobs`), or is above 1 in a multi-process run (whose processes
      must run the same programs in the same order).
  """
  jobs = parse_jobs(jobs)
  if jobs == "auto":
    return 2 if jax.default_backend() == "cpu" and jax.process_count() == 1 else 1
  if jobs > 1 and jax.process_count() > 1:
    raise ValueError(f"jobs: the runs of a multi-process comparison go one at a time, got {jobs}")
  return jobs


def stack(trees: Sequence[Any]) -> Any:
  """The pytrees `trees` (of one structure) stacked on a new leading axis."""
  return jax.tree.map(lambda *x: jnp.stack(x), *trees)


def unstack(tree: Any) -> list[Any]:
  """The pieces of `tree` along its leading axis: `stack`'s inverse."""
  return [jax.tree.map(lambda x, i=i: x[i], tree) for i in range(len(jax.tree.leaves(tree)[0]))]


def in_threads(pool: concurrent.futures.Executor, fn: Callable, *per_config) -> list:
  """``fn(*args_k)`` for each k of the zipped `per_config` lists, each call run
  and waited for (`jax.block_until_ready`) in a thread of `pool`, so the K
  computations run at the same time; returns their outputs in order."""
  return list(pool.map(lambda args: jax.block_until_ready(fn(*args)), zip(*per_config)))


# --- runs one by one ---------------------------------------------------------------


def compare(config: train.Config, named: dict[str, str | dict[str, Any]],
            workdir: str | pathlib.Path, jobs: int | str = 1) -> list[dict[str, Any]]:
  """Runs `config` under each schedule and writes one table and one plot.

  Runs whose schedules share a structure share one optimizer transform, so
  one trace of each step (see `train.create_train_state`).

  Args:
    config: the settings shared by all runs.
    named: run name -> schedule (a name in `schedules.SCHEDULES` or an lrjax
      dict); each run works in ``workdir/<run name>``.
    workdir: where ``comparison.csv``, ``comparison.md`` and
      ``comparison.png`` go (and, for TensorBoard, every run's events).
    jobs: runs trained at once (`resolve_jobs`). Above 1, each run's lines
      start with ``[name]``, the per-run progress bars are off, and an
      interrupt (or a failed run) ends every running run after its current
      epoch, checkpoint written; each run's outputs are those it writes
      alone.

  Returns:
    The table's rows; the table is also printed.

  Raises:
    ValueError: if `jobs` is unusable (`resolve_jobs`).
  """
  jobs = min(resolve_jobs(jobs), len(named))
  workdir = pathlib.Path(workdir)
  transforms: dict[Any, optax.GradientTransformation] = {}
  stop = threading.Event()
  main_process = jax.process_index() == 0

  def run(name: str, s: str | dict[str, Any]) -> list[dict[str, Any]]:
    if main_process and jobs == 1:  # only process 0 prints (as train_and_evaluate does)
      print(f"== {name} ==", flush=True)
    c = dataclasses.replace(config, schedule=s, progress=config.progress and jobs == 1)
    return train.train_and_evaluate(c, workdir / name, transforms=transforms,
                                    name=name if jobs > 1 else None, stop=stop.is_set).history

  start = time.perf_counter()
  if jobs == 1:
    histories = [run(name, s) for name, s in named.items()]
  else:
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
      futures = [pool.submit(run, name, s) for name, s in named.items()]
      try:  # an interrupt or a failed run: the others end after their epoch
        concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
        for f in futures:
          if f.done() and f.exception() is not None:
            raise f.exception()
        histories = [f.result() for f in futures]
      except BaseException:
        stop.set()
        for f in futures:
          f.cancel()
        raise
  wall_s = time.perf_counter() - start
  runs = dict(zip(named, histories))
  rows = [{"schedule": name, **reporting.summarize(h), "time_s": sum(r["time"] for r in h)}
          for name, h in runs.items()]
  if main_process:
    print(reporting.write_comparison(workdir, rows, runs))
    print(f"{len(runs)} runs, {jobs} at a time: {wall_s:.1f} s wall time", flush=True)
  return rows


# --- configurations --------------------------------------------------------------


def lr_sweep(config: train.Config, rates: Sequence[float]) -> dict[str, train.Config]:
  """The config's named schedule at each base rate, labelled ``"<name> lr=<rate>"``.

  Raises:
    ValueError: if the schedule is an lrjax dict (its numbers are its own) or
      two rates are equal.
  """
  if isinstance(config.schedule, dict):
    raise ValueError("--sweep-lr scales a named --schedule; for lrjax dicts list them with --sweep")
  out = {f"{config.schedule} lr={r:g}": dataclasses.replace(config, learning_rate=r) for r in rates}
  if len(out) != len(rates):
    raise ValueError(f"--sweep-lr: the rates must differ, got {', '.join(map(str, rates))}")
  return out


def dict_sweep(config: train.Config, schedules: Sequence[dict[str, Any]]) -> dict[str, train.Config]:
  """One configuration per lrjax dict, labelled by the numbers that differ.

  A label lists the settings whose values are not the same in every dict
  (``"init_value=0.1"``, nested ones as ``"schedule.init_value=0.1"``).
  """
  flat = [_flatten(d) for d in schedules]
  keys = [k for k in dict.fromkeys(k for f in flat for k in f)
          if k != "type" and len({json.dumps(f.get(k)) for f in flat}) > 1]
  labels = [", ".join(f"{k}={f[k]}" for k in keys if k in f) or f"#{i}" for i, f in enumerate(flat)]
  if len(set(labels)) != len(labels):
    labels = [f"#{i} {label}" for i, label in enumerate(labels)]
  return {label: dataclasses.replace(config, schedule=d) for label, d in zip(labels, schedules)}


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


class Stacked(NamedTuple):
  """The K plans and whether they use the plateau transform."""

  plans: list[schedules.Plan]
  plateau: bool


def stack_plans(configs: dict[str, train.Config],
                steps_per_epoch: int | None = None) -> Stacked:
  """Checks that the configurations can train together.

  `steps_per_epoch` defaults to that of the full training set.

  Raises:
    ValueError: if `configs` is empty, a config is unusable, they differ in
      anything but the schedule and base rate, only some use the plateau
      transform, the schedules differ in structure, or two configurations
      would train alike (one line each).
  """
  if not configs:
    raise ValueError("sweep: no configurations")
  first = next(iter(configs.values()))
  shared = lambda c: dataclasses.replace(c, schedule="", learning_rate=1.0)
  for label, c in configs.items():
    train.check_config(c)
    if shared(c) != shared(first):
      raise ValueError(f"sweep: {label!r} differs from the first configuration in more than "
                       "its schedule and base rate")
  spe = steps_per_epoch or train.steps_per_epoch(first)
  plans = [schedules.make_plan(c, spe) for c in configs.values()]
  if len({p.plateau is None for p in plans}) > 1:
    raise ValueError("sweep: either every configuration uses the plateau transform or none does")
  labels = list(configs)
  tree0 = jax.tree.structure(plans[0].hyperparams())
  for label, p in zip(labels, plans):
    if jax.tree.structure(p.hyperparams()) != tree0:
      raise ValueError(
          f"sweep: {label!r} is a {type(p.schedule).__name__} that differs in structure from "
          f"{labels[0]!r}, a {type(plans[0].schedule).__name__}; a sweep stacks schedules "
          "of one kind whose numbers differ (for several kinds, sweep lrjax 'switch' "
          "schedules over the same list with different 'index')")
  seen: dict[str, str] = {}
  for label, p in zip(labels, plans):  # e.g. `sqrt`, whose rate is not --lr
    key = json.dumps([p.schedule.to_dict(), p.plateau], sort_keys=True)
    if key in seen:
      raise ValueError(f"sweep: {label!r} trains exactly as {seen[key]!r}")
    seen[key] = label
  return Stacked(plans, plans[0].plateau is not None)


def init_state(config: train.Config, plans: Sequence[schedules.Plan]):
  """K copies of one freshly initialised LeNet, each with its own optimizer state.

  Returns the graph definition of (model, optimizer), one for all K (one
  optimizer transform, built for the first plan; the others' schedules and
  plateau settings are swapped into their states, see
  `train.create_train_state`), and the state with a leading axis K.
  """
  model = train.create_model(config)
  transforms: dict[Any, optax.GradientTransformation] = {}
  splits = [train.create_train_state(model, plan, transforms) for plan in plans]
  return splits[0][0], stack([s for _, s in splits])


# --- the K configurations' programs ---------------------------------------------


def over_configs(mode: str, fn: Callable, per_config: tuple, shared: tuple = ()):
  """``fn(*per_config[k], *shared)`` for every k, stacked on a leading axis,
  inside one program.

  ``vmap`` batches `fn` over k; ``unroll`` traces it K times, straight-line
  code whose compile time grows with K; ``map`` loops over k, compiled once
  whatever K (see `resolve_mode` for their speeds).
  """
  if mode == "vmap":
    return jax.vmap(fn, in_axes=(0,) * len(per_config) + (None,) * len(shared))(*per_config, *shared)
  if mode == "map":
    return jax.lax.map(lambda xs: fn(*xs, *shared), per_config)
  return stack([fn(*piece, *shared) for piece in unstack(per_config)])


def train_all(graphdef, mode: str, state, images, labels, idx, weight, *, sharding):
  """`train.train_steps` of every configuration on the same batches; each
  metric ``(steps, K)``."""
  TRACES["train_all"] += 1
  fn = functools.partial(train.train_steps, graphdef, sharding=sharding, unroll=train.TRAIN_UNROLL)
  state, metrics = over_configs(mode, fn, (state,), (images, labels, idx, weight))
  return state, jax.tree.map(lambda m: m.T, metrics)


def eval_all(graphdef, mode: str, state, images, labels, idx, weight, *, sharding):
  """`train.eval_steps` of every configuration; each sum ``(K,)``."""
  TRACES["eval_all"] += 1
  fn = functools.partial(train.eval_steps, graphdef, sharding=sharding)
  return over_configs(mode, fn, (state,), (images, labels, idx, weight))


def observe_all(graphdef, mode: str, state, values):
  """`train.observe_step`: configuration k's metric ``values[k]`` to its own plateau transform."""
  TRACES["observe_all"] += 1
  return over_configs(mode, functools.partial(train.observe_step, graphdef), (state, values))


class Programs(NamedTuple):
  """A sweep's compiled programs over the K configurations' state (stacked,
  or a list of K states for ``threads``): ``train(state, idx, weight)`` ->
  (state, each metric ``(steps, K)``), ``evaluate(state)`` -> each sum
  ``(K,)``, ``observe(state, values)`` -> state (None without the plateau
  transform), ``stacked(state)`` -> the state with a leading axis K."""

  train: Callable
  evaluate: Callable
  observe: Callable | None
  stacked: Callable
  state: Any  # the initial state, in the programs' form


def compile_programs(mode: str, graphdef, state, data: train.OnDevice, idx: jax.Array,
                     weight: jax.Array, plateau: bool, mesh: jax.sharding.Mesh,
                     pool: concurrent.futures.Executor) -> Programs:
  """The sweep's programs for `mode`, compiled for the stacked `state` (or its
  K pieces) and chunks of the shape of (`idx`, `weight`)."""
  replicated = NamedSharding(mesh, P())
  images, labels = data.train["image"], data.train["label"]
  test = (data.test["image"], data.test["label"], data.test_idx["idx"], data.test_idx["weight"])
  k = len(jax.tree.leaves(state)[0])
  if mode == "threads":
    steps = train.jitted_steps(mesh)
    pieces = unstack(state)
    train_c = steps.train_chunk.lower(graphdef, pieces[0], images, labels, idx, weight).compile()
    eval_c = steps.evaluate_all.lower(graphdef, pieces[0], *test).compile()
    observe_c = steps.observe.lower(graphdef, pieces[0], jnp.float32(0)).compile() if plateau else None

    def train_k(states, i, w):
      outs = in_threads(pool, lambda s: train_c(s, images, labels, i, w), states)
      return [s for s, _ in outs], jax.tree.map(lambda *m: jnp.stack(m, axis=1), *(m for _, m in outs))

    evaluate = lambda states: stack(in_threads(pool, lambda s: eval_c(s, *test), states))
    observe = None if observe_c is None else (
        lambda states, values: in_threads(pool, observe_c, states, list(values)))
    return Programs(train_k, evaluate, observe, stack, pieces)

  batch = NamedSharding(mesh, P("batch"))
  jit = lambda f: jax.jit(f, static_argnums=(0, 1), out_shardings=replicated)
  train_c = jit(functools.partial(train_all, sharding=batch)).lower(
      graphdef, mode, state, images, labels, idx, weight).compile()
  eval_c = jit(functools.partial(eval_all, sharding=batch)).lower(graphdef, mode, state, *test).compile()
  observe_c = (jit(observe_all).lower(graphdef, mode, state, jnp.zeros(k, jnp.float32)).compile()
               if plateau else None)
  return Programs(lambda st, i, w: train_c(st, images, labels, i, w),
                  lambda st: eval_c(st, *test), observe_c, lambda st: st, state)


# --- the loop ------------------------------------------------------------------------
class SweepResult(NamedTuple):
  """What `sweep` returns."""

  state: nnx.State  # of (model, optimizer), every leaf with a leading axis K
  histories: dict[str, list[dict[str, Any]]]  # label -> train.py's per-epoch rows
  rows: list[dict[str, Any]]  # the table


def sweep(configs: dict[str, train.Config], workdir: str | pathlib.Path,
          mode: str = "auto") -> SweepResult:
  """Trains every configuration at once: the same batches, one table.

  Each epoch is train.py's: chunks of `train.train_steps` over the batch
  rows drawn from ``(seed, epoch)`` (`train.epoch_batches`), then one test
  pass, with the data on the devices once; a progress bar per chunk when
  ``config.progress``.

  Args:
    configs: label -> configuration; they may differ only in `schedule` and
      `learning_rate` (see `lr_sweep` and `dict_sweep`).
    workdir: where ``sweep.json``, ``sweep.md`` and ``sweep.png`` go.
    mode: ``"threads"``, ``"vmap"``, ``"unroll"``, ``"map"`` or ``"auto"``
      (see `resolve_mode` and `compile_programs`).

  Returns:
    The final stacked state, each configuration's history and the table.

  Raises:
    ValueError: if the configurations cannot train together (`stack_plans`).
    input_pipeline.DataError: if the data cannot be found or prepared.
  """
  mode = resolve_mode(mode)
  config = next(iter(configs.values()))
  ds = input_pipeline.load(config.data_dir)
  spe = train.steps_per_epoch(config, len(ds["train_images"]))
  stacked = stack_plans(configs, spe)
  labels, k = list(configs), len(configs)
  workdir = pathlib.Path(workdir)
  train_size = len(ds["train_images"][:config.train_subset])
  test_size = len(ds["test_images"][:config.test_subset])

  mesh, _, replicated = input_pipeline.make_mesh()
  devices = jax.devices()
  print(f"Sweep of {k} configurations by {mode} on {len(devices)} {devices[0].platform} "
        f"device(s): {', '.join(labels)}", flush=True)

  graphdef, state = init_state(config, stacked.plans)
  state = jax.device_put(state, replicated)
  data = train.put_on_device(config, ds, replicated)
  size = train.chunk_steps(spe)
  idx, weight = train.epoch_batches(config, 0, train_size)
  chunk_shape = input_pipeline.to_device({"idx": idx[:size], "weight": weight[:size]}, replicated)
  histories: dict[str, list[dict[str, Any]]] = {label: [] for label in labels}
  with concurrent.futures.ThreadPoolExecutor(k) as pool:
    t0 = time.perf_counter()
    programs = compile_programs(mode, graphdef, state, data, chunk_shape["idx"],
                                chunk_shape["weight"], stacked.plateau, mesh, pool)
    compile_s = time.perf_counter() - t0
    state = programs.state
    start = time.perf_counter()
    for epoch in range(config.epochs):
      t0 = time.perf_counter()
      idx, weight = train.epoch_batches(config, epoch, train_size)
      bar = None
      if config.progress:
        from tqdm import tqdm  # pylint: disable=import-outside-toplevel
        bar = tqdm(total=spe, desc=f"Epoch {epoch + 1}", leave=False, dynamic_ncols=True)
      state, tr = train.train_epoch_on_device(programs.train, state, idx, weight, replicated,
                                              None if bar is None else bar.update)
      if bar is not None:
        bar.close()
      te = input_pipeline.host(programs.evaluate(state))  # each (K,)
      if programs.observe is not None:
        state = programs.observe(state, jnp.asarray(te["correct"] / te["count"], jnp.float32))
      elapsed = time.perf_counter() - t0  # the epoch of all K together
      for i, label in enumerate(labels):
        row = reporting.epoch_row(epoch + 1, {key: v[:, i] for key, v in tr.items()},
                                  {key: v[i] for key, v in te.items()}, elapsed)
        histories[label].append(row)
        print(f"[{label}] {reporting.format_row(row)}", flush=True)
    wall_s = time.perf_counter() - start
  state = programs.stacked(state)

  rows = [{"configuration": label, **reporting.summarize(h)} for label, h in histories.items()]
  summary = (f"{k} configurations trained together by `{mode}` on {devices[0].platform}: "
             f"{wall_s:.1f} s wall time ({wall_s / k:.1f} s per configuration), "
             f"compile {compile_s:.1f} s")
  table = reporting.results_table(rows, "configuration") + "\n\n" + summary
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / "sweep.md").write_text(table + "\n")
  record = {
      "mode": mode, "k": k, "wall_s": wall_s, "compile_s": compile_s,
      "devices": [str(d) for d in devices], "steps_per_epoch": spe,
      "train_size": train_size, "test_size": test_size,
      "config": dataclasses.asdict(config) | {"schedule": None, "learning_rate": None},
      "configurations": {
          label: {"schedule": p.schedule.to_dict(), "plateau": p.plateau,
                  "learning_rate": c.learning_rate}
          for (label, c), p in zip(configs.items(), stacked.plans)},
      "rows": rows, "histories": histories,
  }
  (workdir / "sweep.json").write_text(json.dumps(record, indent=1) + "\n")
  reporting.plot(workdir / "sweep.png", histories)
  print(table, flush=True)
  return SweepResult(state, histories, rows)
