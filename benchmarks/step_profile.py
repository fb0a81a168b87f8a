"""Where the Fashion-MNIST example's train step spends its time on the CPU.

Builds the example's training chunk exactly as its loop does
(``examples/fashion_mnist/train.py``: ``Config(schedule="cosine")``, batch
128, `train.create_train_state` of `train.create_model` under
`schedules.make_plan`, the mesh of `input_pipeline.make_mesh` and
``train.jitted_steps(mesh)``'s chunk: ``--steps`` steps of `train_step`
in one compiled ``lax.scan``, 67 as an epoch of 469 steps is cut by
`train.chunk_steps`), on a synthetic training split of 60,000 images already
on the device (the speed does not depend on the pixels) and the batch rows
of one epoch's order. Then:

* **the step** (always): time per step of the whole chunk (the median of
  ``--repeats`` calls, each waited for; compile time apart), XLA's FLOP
  count of the step (``compiled.cost_analysis()`` of the one-step chunk: XLA
  counts a loop's body once, so the figure of the ``--steps`` chunk is the
  same) and the resulting GFLOP/s;
* **phases** (always): three programs over the same batches, each one jitted
  ``lax.scan``, timed interleaved with the others: the forward pass alone
  (the loss of `train.loss_and_metrics`), forward and backward (``nnx.grad``
  of it) and the full chunk (with the optimizer update, the rate and the
  metrics). ``backward`` and ``optimizer + rest`` are the differences;
* **per op** (when the ``xprof`` package is installed): the chunk run once
  under ``jax.profiler.trace``, its trace read with xprof's converter, every
  event named after an HLO instruction of the compiled program matched to
  its line of ``compiled.as_text()`` (output shape; forward or backward from
  the ``transpose(jvp())`` in its ``op_name``; the JAX op, the last part of
  the ``op_name``). An op's time is its own events' time plus the thread
  pool's worker tasks it spawned (the tasks that run no op themselves,
  charged to the op launched last among those still running: the parallel
  parts of a matrix product), less its waits for them: time on a core, so
  an op spread over two threads counts both. GFLOP/s (for ops with a ``dot``)
  is over that time; GB/s is the bytes of the op's operands and output over
  it (a lower bound of its traffic; left out for ops that touch only part of
  an operand: gather, dynamic slices, scatter). Each thread's busy time is
  the time it spent in the pool's tasks, less its waits, as a fraction of
  the chunk's wall time under the trace (the trace slows the step a little;
  both are printed).

XLA:CPU emits the per-op events only with ``--xla_cpu_enable_xprof_traceme=
true`` in ``XLA_FLAGS`` when its CPU backend starts. Run as a script, this
file appends it to ``XLA_FLAGS`` before anything imports JAX; when `main` is
called in a process that started without it (as the smoke test does), the
per-op profile runs in a child process of this script (``--ops-only``) with
the flag set. Without ``xprof`` the per-op section says it was skipped.

Usage::

  python benchmarks/step_profile.py                  # 67 steps, 5 repeats, top 15 ops
  python benchmarks/step_profile.py --top 30 --json step_profile.json
  python benchmarks/step_profile.py --quick          # a smoke test, not a measurement
"""

from __future__ import annotations

import os
import sys

TRACEME_FLAG = "--xla_cpu_enable_xprof_traceme=true"

if __name__ == "__main__":  # before JAX starts its CPU backend, which reads XLA_FLAGS once
  if TRACEME_FLAG not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TRACEME_FLAG}".strip()

# pylint: disable=wrong-import-position
import argparse
import bisect
import collections
import contextlib
import functools
import gzip
import importlib.util
import json
import math
import pathlib
import re
import subprocess
import tempfile
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import timing

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "fashion_mnist"
BATCH = 128
STEPS = 67  # train.chunk_steps(469): the example's chunk of an epoch at batch 128
TRAIN_SIZE = 60_000  # the images held on the device, as the example holds the split
QUICK = {"steps": 3, "batch": 8, "repeats": 2, "train_size": 64, "copy_mb": (1,)}
COPY_MB = (10, 256)  # about conv1's patch matrix f32[25, 100352]; far beyond any cache
PHASES = ("forward", "forward+backward", "train step")
_SKIP_PREFIXES = ("$", "ThunkExecutor", "ThreadpoolListener", "SlinkyThreadPool", "PjitFunction")
_WORKER_TASK = "ThreadpoolListener::Region"
_CONTROL_FLOW = ("while", "conditional", "call")  # their events hold their ops' events
_LOOK_BACK = 64  # launched ops searched for a worker task's owner
_PARTIAL_READS = ("gather", "dynamic-slice", "dynamic-update-slice", "scatter")
_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2, "s32": 4,
          "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16}


def _import_example():
  """The example's ``train``, ``schedules`` and ``input_pipeline`` modules, or a clear error."""
  if not (EXAMPLE / "train.py").exists():
    raise SystemExit(f"step_profile: {EXAMPLE / 'train.py'} not found; "
                     "this benchmark profiles the Fashion-MNIST example's train step")
  if str(EXAMPLE) not in sys.path:
    sys.path.insert(0, str(EXAMPLE))
  import input_pipeline  # pylint: disable=import-outside-toplevel
  import schedules  # pylint: disable=import-outside-toplevel
  import train  # pylint: disable=import-outside-toplevel
  return train, schedules, input_pipeline


# --- the example's chunk ------------------------------------------------------


class Chunk(NamedTuple):
  """The example's training chunk and its arguments."""

  train: Any  # the example's train module
  graphdef: Any
  state: Any
  args: tuple  # (split, idx, weight), on the device: split holds "image" and "label"
  data_sharding: Any  # of a batch
  chunk: Any  # train.jitted_steps(mesh)[0]: the jitted train.train_steps
  steps: int
  batch: int


def build(steps: int, batch: int, train_size: int) -> Chunk:
  """The example's model, optimizer and jitted chunk, and a synthetic split on the device.

  Args:
    steps: steps per chunk (rows of `idx`).
    batch: the batch size.
    train_size: images in the synthetic split (at least ``steps * batch``
      rows are drawn from it, in one epoch's order).

  Returns:
    The chunk, ready to call as ``chunk(graphdef, state, *args)``.
  """
  train, schedules, input_pipeline = _import_example()
  config = train.Config(schedule="cosine", batch_size=batch)
  graphdef, state = train.create_train_state(
      train.create_model(config), config, schedules.make_plan(config, train.steps_per_epoch(config)))
  mesh, data_sharding, replicated = input_pipeline.make_mesh()
  state = jax.device_put(state, replicated)  # every leaf an array, as the example's loop does
  rng = np.random.default_rng(0)
  split = input_pipeline.to_device(
      {"image": rng.integers(0, 256, (train_size, 28, 28), dtype=np.uint8),
       "label": rng.integers(0, 10, (train_size,)).astype(np.int32)}, replicated)
  order = input_pipeline.epoch_order(config.seed, 0, train_size)
  idx, weight = input_pipeline.batch_indices(np.resize(order, max(train_size, steps * batch)), batch)
  rows = input_pipeline.to_device({"idx": idx[:steps], "weight": weight[:steps]}, replicated)
  return Chunk(train, graphdef, state, (split, rows["idx"], rows["weight"]), data_sharding,
               train.jitted_steps(mesh)[0], steps, batch)


def _phase_fns(c: Chunk) -> dict[str, Any]:
  """Forward alone and forward+backward over the chunk's batches, each a function of
  (state, split, idx, weight) returning a scalar."""
  from flax import nnx  # pylint: disable=import-outside-toplevel
  train, graphdef, sharding = c.train, c.graphdef, c.data_sharding

  def batch_of(split, i, w):  # the batch the example's chunk cuts, sharded alike
    return jax.lax.with_sharding_constraint(
        {"image": split["image"][i], "label": split["label"][i], "weight": w}, sharding)

  # The state rides in the scan's carry, unchanged, as in train.train_steps
  # (nnx merges it inside the loop's trace).
  def forward(state, split, idx, weight):
    def body(carry, xs):
      state, total = carry
      model, _ = nnx.merge(graphdef, state)
      loss = train.loss_and_metrics(model, batch_of(split, *xs))[0]
      return (state, total + loss), None
    return jax.lax.scan(body, (state, jnp.zeros((), jnp.float32)), (idx, weight))[0][1]

  def forward_backward(state, split, idx, weight):
    def body(carry, xs):
      state, total = carry
      model, _ = nnx.merge(graphdef, state)
      grads = nnx.grad(train.loss_and_metrics, has_aux=True)(model, batch_of(split, *xs))[0]
      # Every gradient summed into the carry, so none is optimized away (61,706 adds).
      return (state, total + sum(jnp.sum(g) for g in jax.tree.leaves(grads))), None
    return jax.lax.scan(body, (state, jnp.zeros((), jnp.float32)), (idx, weight))[0][1]

  return {"forward": forward, "forward+backward": forward_backward}


def compile_chunk(c: Chunk, idx=None, weight=None):
  """The example's own jitted chunk lowered and compiled (for other rows, if
  given), and the seconds it took; it takes ``(state, split, idx, weight)``."""
  split, i, w = c.args
  t0 = time.perf_counter()
  out = c.chunk.lower(c.graphdef, c.state, split,
                      i if idx is None else idx, w if weight is None else weight).compile()
  return out, time.perf_counter() - t0


def _flops(compiled) -> float:
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get("flops", float("nan")))


def _split(ms: dict[str, float]) -> dict[str, float]:
  return {"forward": ms["forward"], "backward": ms["forward+backward"] - ms["forward"],
          "optimizer + rest": ms["train step"] - ms["forward+backward"]}


def copy_bandwidth(sizes_mb: Sequence[float], repeats: int = 7) -> dict[str, float]:
  """One core's memory rate: GB/s (bytes read + written) of a NumPy copy of each size.

  The median of `repeats` copies, after one untimed: a reference for the ops'
  GB/s (NumPy copies on one thread).
  """
  out = {}
  for mb in sizes_mb:
    n = int(mb * 1e6) // 4
    src, dst = np.ones(n, np.float32), np.zeros(n, np.float32)
    np.copyto(dst, src)
    times = []
    for _ in range(repeats):
      t0 = time.perf_counter()
      np.copyto(dst, src)
      times.append(time.perf_counter() - t0)
    out[f"{mb:g}"] = 2 * n * 4 / timing.summary(times)["median_s"] / 1e9
  return out


def measure_phases(c: Chunk, repeats: int) -> dict[str, Any]:
  """Compiles the three phase programs and the one-step chunk; times the three.

  Returns:
    ``phases``: name -> ``ms_per_step``, ``min_ms_per_step``, ``compile_s``,
    ``flops_per_step``, ``runs_ms``; ``step``: the full chunk's ``ms_per_step``,
    ``flops_per_step`` (of the one-step chunk), ``flops_chunk`` (XLA's count
    for the ``steps``-step program), ``gflops_per_s``, ``compile_s``;
    ``split`` and ``split_fastest``: ms per step of forward, backward and
    optimizer + rest from the medians and from the fastest calls;
    ``compiled``: the example's compiled chunk (for `per_op_profile`).
  """
  programs, compile_s, flops = {}, {}, {}
  for name, fn in _phase_fns(c).items():
    programs[name], compile_s[name] = timing.compiled(fn, c.state, *c.args)
  programs["train step"], compile_s["train step"] = compile_chunk(c)
  for name, program in programs.items():
    flops[name] = _flops(program)
  one_step, _ = compile_chunk(c, c.args[1][:1], c.args[2][:1])  # a loop of one trip
  step_flops = _flops(one_step)
  # XLA counts a loop's body once; should a version count every trip, divide.
  per = c.steps if c.steps > 1 and flops["train step"] > 1.5 * step_flops else 1
  loop = "per trip" if per > 1 else "once"
  times = timing.interleaved({name: functools.partial(programs[name], c.state, *c.args)
                              for name in PHASES}, repeats=repeats)
  phases = {}
  for name in PHASES:
    t = timing.summary(times[name], per=c.steps)
    phases[name] = {"ms_per_step": t["median_s"] * 1e3, "min_ms_per_step": t["min_s"] * 1e3,
                    "runs_ms": [x * 1e3 for x in t["runs_s"]], "compile_s": compile_s[name],
                    "flops_per_step": flops[name] / per}
  ms = {k: v["ms_per_step"] for k, v in phases.items()}
  full = phases["train step"]
  return {
      "phases": phases,
      "split": _split(ms),
      "split_fastest": _split({k: v["min_ms_per_step"] for k, v in phases.items()}),
      "step": {"ms_per_step": full["ms_per_step"], "min_ms_per_step": full["min_ms_per_step"],
               "compile_s": full["compile_s"], "flops_per_step": step_flops,
               "flops_chunk": flops["train step"], "loop_body_counted": loop,
               "gflops_per_s": step_flops / (full["ms_per_step"] * 1e6),
               "images_per_s": c.batch / (full["ms_per_step"] / 1e3)},
      "compiled": programs["train step"],
  }


# --- the compiled program's instructions -------------------------------------


class Instr(NamedTuple):
  """One HLO instruction of the optimized program."""

  name: str
  shape: str  # e.g. "f32[25,6]"
  opcode: str
  operands: list[str]
  attrs: str
  computation: str

  @property
  def op_name(self) -> str:
    m = re.search(r'op_name="([^"]*)"', self.attrs)
    return m.group(1) if m else ""

  @property
  def calls(self) -> list[str]:
    m = re.search(r"calls=([^,]+(?:, *%[^,]+)*)", self.attrs)
    return re.findall(r"%([\w.\-]+)", m.group(1)) if m else []


_INSTR = re.compile(r"^\s*(?:ROOT\s+)?%(?P<name>[\w.\-]+) = "
                    r"(?P<shape>\((?:[^()]|\([^()]*\))*\)|[^\s(]+) "
                    r"(?P<opcode>[\w\-]+)\((?P<args>[^)]*)\)(?P<attrs>.*)$")
_COMPUTATION = re.compile(r"^(?:ENTRY\s+)?%(?P<name>[\w.\-]+) .*\{\s*$")
_ARRAY = re.compile(r"(?P<dtype>[a-z]+[0-9]*)\[(?P<dims>[0-9,]*)\]")


def parse_hlo(text: str) -> tuple[dict[str, Instr], dict[str, list[Instr]]]:
  """The instructions of ``compiled.as_text()`` by name, and by computation."""
  instrs, computations, current = {}, collections.defaultdict(list), ""
  for line in text.splitlines():
    m = _INSTR.match(line)
    if m:
      i = Instr(m["name"], m["shape"], m["opcode"], re.findall(r"%([\w.\-]+)", m["args"]),
                m["attrs"], current)
      instrs[i.name] = i
      computations[current].append(i)
      continue
    m = _COMPUTATION.match(line)
    if m:
      current = m["name"]
  return instrs, computations


def _no_layout(shape: str) -> str:
  return re.sub(r"\{[^}]*\}", "", shape)


def _arrays(shape: str) -> list[tuple[str, list[int]]]:
  return [(m["dtype"], [int(d) for d in m["dims"].split(",") if d])
          for m in _ARRAY.finditer(_no_layout(shape))]


def shape_bytes(shape: str) -> int:
  """Bytes of an HLO shape (a tuple's: the sum of its arrays')."""
  return sum(_BYTES.get(dt, 4) * math.prod(dims) for dt, dims in _arrays(shape))


def _called(instr: Instr, computations: dict[str, list[Instr]]) -> list[Instr]:
  """The instructions of the computations `instr` calls, recursively."""
  out, todo, seen = [], list(instr.calls), set()
  while todo:
    name = todo.pop()
    if name in seen:
      continue
    seen.add(name)
    for i in computations.get(name, []):
      out.append(i)
      todo.extend(i.calls)
  return out


def dot_flops(instr: Instr, instrs: dict[str, Instr]) -> float:
  """2 x output elements x contracted elements of a ``dot`` (0 for anything else)."""
  if instr.opcode != "dot" or not instr.operands or instr.operands[0] not in instrs:
    return 0.0
  lhs = _arrays(instrs[instr.operands[0]].shape)
  m = re.search(r"lhs_contracting_dims=\{([0-9,]*)\}", instr.attrs)
  if not lhs or m is None:
    return 0.0
  contracted = math.prod(lhs[0][1][int(d)] for d in m.group(1).split(",") if d)
  return 2.0 * math.prod(_arrays(instr.shape)[0][1]) * contracted


def describe(instr: Instr, instrs: dict[str, Instr], computations) -> dict[str, Any]:
  """Output shape, forward/backward, JAX op, FLOPs and bytes of one instruction."""
  inner = _called(instr, computations)
  flops = dot_flops(instr, instrs) + sum(dot_flops(i, instrs) for i in inner)
  partial = any(i.opcode in _PARTIAL_READS for i in [instr, *inner])
  moved = None
  if not partial and all(o in instrs for o in instr.operands):
    moved = shape_bytes(instr.shape) + sum(shape_bytes(instrs[o].shape) for o in instr.operands)
  op_name = instr.op_name
  return {"shape": _no_layout(instr.shape),
          "pass": ("bwd" if "transpose(jvp" in op_name else "fwd" if "jvp(" in op_name
                   else "rest"),
          "jax_op": op_name.rsplit("/", 1)[-1] if op_name else "",
          "opcode": instr.opcode, "flops": flops or None, "bytes": moved}


# --- the trace ----------------------------------------------------------------


@contextlib.contextmanager
def _quiet_stderr():
  """File descriptor 2 to /dev/null: the profiler's C++ logging, not Python's errors
  (an exception is raised after the descriptor is restored)."""
  sys.stderr.flush()
  saved = os.dup(2)
  devnull = os.open(os.devnull, os.O_WRONLY)
  try:
    os.dup2(devnull, 2)
    yield
  finally:
    os.dup2(saved, 2)
    os.close(devnull)
    os.close(saved)


def trace_events(run, logdir: str) -> list[dict[str, Any]]:
  """The Chrome-trace events of ``run()`` under ``jax.profiler.trace``, read with xprof."""
  from xprof.convert import raw_to_tool_data  # pylint: disable=import-outside-toplevel
  options = jax.profiler.ProfileOptions()
  options.python_tracer_level = 0  # no Python function events
  with _quiet_stderr():
    with jax.profiler.trace(logdir, profiler_options=options):
      jax.block_until_ready(run())
    paths = sorted(pathlib.Path(logdir).rglob("*.xplane.pb"))
    if not paths:
      raise RuntimeError(f"no .xplane.pb under {logdir}")
    data, _ = raw_to_tool_data.xspace_to_tool_data([str(paths[-1])], "trace_viewer", {})
  if isinstance(data, bytes) and data[:2] == b"\x1f\x8b":
    data = gzip.decompress(data)
  return json.loads(data)["traceEvents"]


def attribute(events: list[dict[str, Any]], instrs: dict[str, Instr]) -> dict[str, Any]:
  """Core time per op and busy time per thread from the trace's events.

  Returns:
    ``ops``: name -> ``us`` (its own events, less their waits, plus the worker
    tasks charged to it) and ``calls``; ``threads``: name -> ``busy_us``,
    ``ops_us``; ``wall_us``: the program's run (from the first op's or worker
    task's start to the last one's end); ``unattributed_us``: worker tasks
    with no op running.
  """
  names = {e["tid"]: e["args"]["name"] for e in events
           if e.get("ph") == "M" and e.get("name") == "thread_name"}
  spans = [e for e in events if e.get("ph") == "X" and "dur" in e]
  is_op = lambda e: (e["name"] in instrs and instrs[e["name"]].opcode not in _CONTROL_FLOW
                     and not e["name"].startswith(_SKIP_PREFIXES))
  waits = [e for e in spans if "Await" in e["name"] or "wait for completion" in e["name"]]
  by_thread, waits_of = collections.defaultdict(list), collections.defaultdict(list)
  for e in spans:
    by_thread[e["tid"]].append(e)
  for w in waits:
    waits_of[w["tid"]].append(w)

  def waited(tid, t0, t1):  # a thread's waits within [t0, t1]
    return sum(w["dur"] for w in waits_of[tid] if t0 <= w["ts"] and w["ts"] + w["dur"] <= t1)

  ops = [e for e in spans if is_op(e)]
  ends = collections.defaultdict(list)  # name -> times of its "end: name" events, in order
  for e in sorted(spans, key=lambda e: e["ts"]):
    if e["name"].startswith("end: "):
      ends[e["name"][5:]].append(e["ts"])
  runs = []  # (start, end of the op's run as the trace shows it, name)
  seen = collections.Counter()
  for e in sorted(ops, key=lambda e: e["ts"]):
    k, seen[e["name"]] = seen[e["name"]], seen[e["name"]] + 1
    done = ends[e["name"]][k] if k < len(ends[e["name"]]) else e["ts"] + e["dur"]
    runs.append((e["ts"], max(done, e["ts"] + e["dur"]), e["name"]))
  starts = [r[0] for r in runs]

  stats = collections.defaultdict(lambda: {"us": 0.0, "calls": 0})
  for e in ops:
    stats[e["name"]]["us"] += e["dur"] - waited(e["tid"], e["ts"], e["ts"] + e["dur"])
    stats[e["name"]]["calls"] += 1
  threads, unattributed = {}, 0.0
  for tid, evs in by_thread.items():
    thread_ops = sorted((e for e in evs if is_op(e)), key=lambda e: e["ts"])
    op_starts = [e["ts"] for e in thread_ops]
    busy = ops_us = 0.0
    for task in (e for e in evs if e["name"] == _WORKER_TASK):
      t0, t1 = task["ts"], task["ts"] + task["dur"]
      net = task["dur"] - waited(tid, t0, t1)
      busy += net
      i = bisect.bisect_right(op_starts, t1)
      if i and op_starts[i - 1] >= t0:
        continue  # a task that runs ops: their events count them
      j = bisect.bisect_right(starts, t0)  # the op launched last among those still running
      owner = next((runs[k][2] for k in range(j - 1, max(j - _LOOK_BACK, 0) - 1, -1)
                    if runs[k][1] >= t0), None)
      if owner is None:
        unattributed += net
      else:
        stats[owner]["us"] += net
    for e in thread_ops:
      ops_us += e["dur"] - waited(tid, e["ts"], e["ts"] + e["dur"])
    if busy or ops_us:
      base = names.get(tid, str(tid)).split("/")[0]  # "tf_XLAEigen/-2736246188701431837"
      n = sum(k.startswith(base + " ") for k in threads) + 1
      threads[f"{base} {n}"] = {"busy_us": busy, "ops_us": ops_us}
  work = runs + [(e["ts"], e["ts"] + e["dur"], "") for e in spans if e["name"] == _WORKER_TASK]
  wall = max(r[1] for r in work) - min(r[0] for r in work) if runs else 0.0
  return {"ops": dict(stats), "threads": threads, "wall_us": wall,
          "unattributed_us": unattributed}


def per_op_profile(c: Chunk, compiled, top: int) -> dict[str, Any]:
  """The chunk once under the profiler, its ops matched to the compiled HLO.

  Returns:
    ``ops`` (the `top` by time: name, ``ms_per_step``, ``share`` of all ops'
    time, shape, pass, JAX op, ``gflops_per_s``, ``gb_per_s``), ``all_ops_ms``,
    ``by_pass`` (ms per step of fwd, bwd, rest), ``threads`` (``busy`` as a
    fraction of the wall time), ``wall_ms_per_step`` under the trace,
    ``events`` (op events seen), or ``skipped`` with the reason.
  """
  instrs, computations = parse_hlo(compiled.as_text())
  run = functools.partial(compiled, c.state, *c.args)
  jax.block_until_ready(run())  # warm
  with tempfile.TemporaryDirectory(prefix="step_profile_") as logdir:
    events = trace_events(run, logdir)
  a = attribute(events, instrs)
  if not a["ops"]:
    return {"skipped": "no per-op events in the trace: the CPU backend started without "
                       f"{TRACEME_FLAG} in XLA_FLAGS (run this file as a script)"}
  s = c.steps
  total = sum(v["us"] for v in a["ops"].values())
  rows, by_pass = [], collections.Counter()
  for name, v in sorted(a["ops"].items(), key=lambda kv: -kv[1]["us"]):
    d = describe(instrs[name], instrs, computations)
    by_pass[d["pass"]] += v["us"] / s / 1e3
    seconds = v["us"] / v["calls"] / 1e6  # per call
    rows.append({"op": name, "ms_per_step": v["us"] / s / 1e3, "share": v["us"] / total,
                 "calls_per_step": v["calls"] / s, "shape": d["shape"], "pass": d["pass"],
                 "jax_op": d["jax_op"], "opcode": d["opcode"],
                 "gflops_per_s": d["flops"] / seconds / 1e9 if d["flops"] and seconds > 0 else None,
                 "gb_per_s": d["bytes"] / seconds / 1e9 if d["bytes"] and seconds > 0 else None})
  wall = a["wall_us"]
  return {"ops": rows[:top], "op_count": len(rows), "all_ops_ms": total / s / 1e3,
          "by_pass": dict(by_pass), "unattributed_ms": a["unattributed_us"] / s / 1e3,
          "outside_ops_ms": (sum(v["busy_us"] for v in a["threads"].values()) - total
                             - a["unattributed_us"]) / s / 1e3,
          "wall_ms_per_step": wall / s / 1e3, "events": sum(v["calls"] for v in a["ops"].values()),
          "threads": {k: {"busy_ms_per_step": v["busy_us"] / s / 1e3,
                          "busy": v["busy_us"] / wall if wall else float("nan"),
                          "ops_ms_per_step": v["ops_us"] / s / 1e3}
                      for k, v in sorted(a["threads"].items())}}


def _per_op_in_child(args: argparse.Namespace) -> dict[str, Any]:
  """`per_op_profile` in a child process that starts JAX with the trace flag."""
  with tempfile.TemporaryDirectory(prefix="step_profile_") as tmp:
    out = pathlib.Path(tmp) / "ops.json"
    cmd = [sys.executable, str(pathlib.Path(__file__).resolve()), "--ops-only", str(out),
           "--steps", str(args.steps), "--top", str(args.top)] + (["--quick"] if args.quick else [])
    env = dict(os.environ, XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} {TRACEME_FLAG}".strip())
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode or not out.exists():
      tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
      return {"skipped": f"the per-op child process failed ({done.returncode}): {tail}"}
    result = json.loads(out.read_text())
  result["in_child_process"] = True
  return result


# --- tables -------------------------------------------------------------------


def _fmt(x, spec: str = ".2f") -> str:
  return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def step_table(m: dict[str, Any]) -> str:
  s = m["step"]
  head = "| ms/step | fastest ms/step | images/s | compile (s) | MFLOP/step | GFLOP/s |"
  return "\n".join([head, "|---:|---:|---:|---:|---:|---:|",
                    f"| {s['ms_per_step']:.2f} | {s['min_ms_per_step']:.2f} | "
                    f"{s['images_per_s']:,.0f} | {s['compile_s']:.2f} | "
                    f"{s['flops_per_step'] / 1e6:.1f} | {s['gflops_per_s']:.1f} |"])


def phase_table(m: dict[str, Any]) -> str:
  ph, split, fast = m["phases"], m["split"], m["split_fastest"]
  step = ph["train step"]["ms_per_step"]
  rows = [("forward", "forward"), ("backward", "forward+backward"),
          ("optimizer + rest", "train step")]
  out = ["| phase | ms/step | share of step | from fastest runs | program timed | its ms/step "
         "| its fastest | its MFLOP/step | its compile (s) |",
         "|---|---:|---:|---:|---|---:|---:|---:|---:|"]
  for label, prog in rows:
    p = ph[prog]
    out.append(f"| {label} | {split[label]:.2f} | {split[label] / step:.0%} | {fast[label]:.2f} | "
               f"{prog} | {p['ms_per_step']:.2f} | {p['min_ms_per_step']:.2f} | "
               f"{p['flops_per_step'] / 1e6:.1f} | {p['compile_s']:.2f} |")
  return "\n".join(out)


def op_table(p: dict[str, Any]) -> str:
  out = ["| op | ms/step | % of op time | output shape | pass | JAX op | GFLOP/s | GB/s |",
         "|---|---:|---:|---|---|---|---:|---:|"]
  for r in p["ops"]:
    out.append(f"| `{r['op']}` | {r['ms_per_step']:.3f} | {r['share']:.1%} | {r['shape']} | "
               f"{r['pass']} | {r['jax_op']} | {_fmt(r['gflops_per_s'], '.1f')} | "
               f"{_fmt(r['gb_per_s'], '.1f')} |")
  return "\n".join(out)


def thread_table(p: dict[str, Any]) -> str:
  wall = p["wall_ms_per_step"]
  out = ["| thread | busy ms/step | busy (of wall) | in ops' own events ms/step | (of wall) |",
         "|---|---:|---:|---:|---:|"]
  for name, t in p["threads"].items():
    out.append(f"| {name} | {t['busy_ms_per_step']:.2f} | {t['busy']:.0%} | "
               f"{t['ops_ms_per_step']:.2f} | {t['ops_ms_per_step'] / wall:.0%} |")
  return "\n".join(out)


# --- main ---------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  """Runs the profile, prints its tables and returns the results."""
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--steps", type=int, default=STEPS, help="steps per chunk (default 67)")
  parser.add_argument("--repeats", type=int, default=5, help="timed calls of each program")
  parser.add_argument("--top", type=int, default=15, help="rows of the per-op table")
  parser.add_argument("--json", metavar="PATH", help="also write the results here")
  parser.add_argument("--quick", action="store_true",
                      help="tiny sizes (3 steps, batch 8): a smoke test, not a measurement")
  parser.add_argument("--ops-only", metavar="PATH", help=argparse.SUPPRESS)  # the child process
  args = parser.parse_args(argv)
  for name in ("steps", "repeats", "top"):
    if getattr(args, name) < 1:
      parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
  if args.quick:
    args.steps, args.repeats = QUICK["steps"], QUICK["repeats"]
  batch = QUICK["batch"] if args.quick else BATCH
  train_size = QUICK["train_size"] if args.quick else TRAIN_SIZE

  c = build(args.steps, batch, train_size)
  if args.ops_only:  # the child of _per_op_in_child: the per-op profile alone
    compiled, _ = compile_chunk(c)
    pathlib.Path(args.ops_only).write_text(json.dumps(per_op_profile(c, compiled, args.top)))
    return {}

  machine = timing.machine()
  print(f"Fashion-MNIST example's train step (cosine schedule, batch {batch}), "
        f"{args.steps} steps per compiled chunk as train.jitted_steps(mesh)'s, "
        f"on a synthetic split of {train_size:,} images on the device: JAX {jax.__version__} on "
        f"{jax.devices()[0].platform} x{jax.device_count()}; {machine}; median of "
        f"{args.repeats} calls per program{' (--quick: not a measurement)' if args.quick else ''}.\n")
  m = measure_phases(c, args.repeats)
  compiled = m.pop("compiled")
  print(step_table(m))
  print(f"\n(FLOPs: XLA's cost analysis of the one-step chunk; of the {args.steps}-step chunk "
        f"{m['step']['flops_chunk'] / 1e6:.1f} M: the loop body counted "
        f"{m['step']['loop_body_counted']}.)\n")
  m["copy_gb_per_s"] = copy_bandwidth(QUICK["copy_mb"] if args.quick else COPY_MB)
  print("One core's memory rate for reference (a NumPy copy, bytes read + written): " + ", ".join(
      f"{mb} MB {gbs:.1f} GB/s" for mb, gbs in m["copy_gb_per_s"].items()) + ".\n")
  print(phase_table(m))
  print("\n(Each program a jitted lax.scan over the same batches; the phases are the "
        "differences of their times.)\n")

  if importlib.util.find_spec("xprof") is None:
    ops = {"skipped": "xprof is not installed (pip install xprof, or the bench extra)"}
  elif TRACEME_FLAG in os.environ.get("XLA_FLAGS", ""):
    ops = per_op_profile(c, compiled, args.top)
  else:
    ops = _per_op_in_child(args)
  if "skipped" in ops:
    print(f"Per-op profile skipped: {ops['skipped']}.")
  else:
    where = " (in a child process started with the flag)" if ops.get("in_child_process") else ""
    print(f"Per op{where}: the chunk once under jax.profiler.trace, "
          f"{ops['wall_ms_per_step']:.2f} ms/step of wall time under the trace; "
          f"{ops['op_count']} ops, {ops['all_ops_ms']:.2f} ms/step of core time in all "
          f"(fwd {ops['by_pass'].get('fwd', 0):.2f}, bwd {ops['by_pass'].get('bwd', 0):.2f}, "
          f"rest {ops['by_pass'].get('rest', 0):.2f}); the threads' busy time outside any op "
          f"(the executor between ops) {ops['outside_ops_ms']:.2f} ms/step, worker tasks with no "
          f"op running {ops['unattributed_ms']:.2f}; the top {len(ops['ops'])}:\n")
    print(op_table(ops))
    print("\n(ms/step: time on a core, the op's own events less their waits plus the worker "
          "tasks it spawned; pass: bwd where its op_name has transpose(jvp()), fwd where jvp(), "
          "rest: the optimizer, the schedule, the batch gather, the loop; GFLOP/s from the dots' "
          "shapes and GB/s from its operands' and output's bytes, both over its time.)\n")
    print(thread_table(ops))
    print("\n(busy: in the thread pool's tasks, less waits; own events: inside ops' events "
          "alone, without the worker tasks of the ops that spread over both threads.)")

  report = {"machine": machine, "jax": jax.__version__, "quick": args.quick, "steps": args.steps,
            "batch": batch, "train_size": train_size, "repeats": args.repeats, **m,
            "per_op": ops}
  if args.json:
    with open(args.json, "w") as f:
      json.dump(report, f, indent=2)
  return report


if __name__ == "__main__":
  main(sys.argv[1:])
