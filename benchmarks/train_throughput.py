"""Images per second of the Fashion-MNIST example's training step, against PyTorch.

Times the example's own ``train_step`` (``examples/fashion_mnist/train.py``:
its LeNet as ``conv_impl="auto"`` picks it, its optimizer
``nnx.Optimizer(model, lrjax.inject_hyperparams(optax.sgd)(learning_rate=
schedule))``, ``jax.jit(train_step, static_argnums=0)`` as its loop does) at
batch 128 under three of its schedules: ``none`` (a constant rate), ``cosine``
and ``plateau`` (the ``reduce_on_plateau`` transform). Next to it, in the same
run and on the same CPU:

* ``JAX example, conv_impl=xla``: the example's idiomatic ``models.LeNet``
  (NHWC ``nnx.Conv``, ``nnx.max_pool``), the default on GPU and TPU, through
  the same step and optimizer: what the CPU model is measured against;
* ``PyTorch eager``: the same network (``nn.Conv2d``, ``F.max_pool2d``,
  ``nn.Linear``, default initialisation) and loop (``zero_grad``, forward,
  ``cross_entropy``, ``backward``, ``SGD.step``; ``CosineAnnealingLR`` or
  ``ReduceLROnPlateau`` stepped once per epoch of 469 steps), with the
  uint8-to-[-1, 1] scaling done in the loop as the JAX step does it. Skipped,
  saying so, when torch is not installed.

Batches are synthetic (random uint8 images, already on the device) so that
the step, not the input pipeline, is timed. Each variant runs ``--steps``
steps per repeat (dispatched back to back, then waited for); the variants are
interleaved within each repeat so machine noise hits them alike, and the
median over ``--repeats`` repeats is reported. ``first call`` is the first
step's time, compilation included. ``compiles`` is how many executables the
jitted step holds after running with one schedule and then with the same
schedule type at other values (``--lr`` 0.3, then 0.1, swapped into the
optimizer state by ``lrjax.set_hyperparams``): it must be 1.

``--e2e`` adds the figure users feel: the wall time for the example
(``train_and_evaluate``, real data) to first reach ``--target`` test accuracy
under ``--e2e-schedule`` (the sum of its epochs' times, each including the
test pass and the checkpoint; the first includes compilation), next to the
same PyTorch loop with the same schedule and data order, stopped at the
target. It needs the Fashion-MNIST cache or the Debian package (see the
example's README) and takes minutes.

Usage::

  python benchmarks/train_throughput.py                 # step throughput
  python benchmarks/train_throughput.py --e2e           # and time to 0.91
  python benchmarks/train_throughput.py --json out.json
  python benchmarks/train_throughput.py --quick         # a smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

import timing
from torch_lenet import torch_lenet

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "fashion_mnist"
BATCH = 128
STEPS_PER_EPOCH = 469  # 60,000 images at batch 128, the last batch partial
SCHEDULES = ("none", "cosine", "plateau")
XLA_ROW = "JAX example, conv_impl=xla (models.LeNet)"
PAUSE_S = 0.05  # between timed blocks: lets one library's spinning threads settle


def _import_example():
  """The example's ``train`` module (its ``schedules`` and ``input_pipeline``
  as ``train.schedules``, ``train.input_pipeline``), or a clear error."""
  if not (EXAMPLE / "train.py").exists():
    raise SystemExit(f"train_throughput: {EXAMPLE / 'train.py'} not found; "
                     "this benchmark times the Fashion-MNIST example's train step")
  if str(EXAMPLE) not in sys.path:
    sys.path.insert(0, str(EXAMPLE))
  import train  # pylint: disable=import-outside-toplevel
  return train


# --- JAX ----------------------------------------------------------------------


def _synthetic_batches(n: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
  rng = np.random.default_rng(seed)
  return [{"image": rng.integers(0, 256, (BATCH, 28, 28), dtype=np.uint8),
           "label": rng.integers(0, 10, (BATCH,), dtype=np.int32),
           "weight": np.ones((BATCH,), np.float32)} for _ in range(n)]


class JaxRunner:
  """The example's jitted train step on one model (``conv_impl``) and schedule."""

  def __init__(self, ex, conv_impl: str, schedule: str, batches, lr: float = 0.3):
    self.ex, self.conv_impl, self.name = ex, conv_impl, schedule
    self.step = jax.jit(ex.train_step, static_argnums=0)
    self.batches = [jax.device_put(b) for b in batches]
    self.transforms = {}  # one optimizer transform for every value of this schedule
    self.graphdef, self.state = self._init(lr)
    self.i = 0
    before = self.step._cache_size()  # pylint: disable=protected-access
    t0 = time.perf_counter()
    self.run(1)
    self.first_call_s = time.perf_counter() - t0
    self.compiled = self.step._cache_size() - before  # pylint: disable=protected-access

  def _init(self, lr: float):
    ex = self.ex
    config = ex.Config(schedule=self.name, learning_rate=lr, conv_impl=self.conv_impl)
    plan = ex.schedules.make_plan(config, STEPS_PER_EPOCH)
    return ex.create_train_state(ex.create_model(config), config, plan, self.transforms)

  def run(self, steps: int) -> None:
    out = None
    for _ in range(steps):
      self.state, out = self.step(self.graphdef, self.state,
                                  self.batches[self.i % len(self.batches)])
      self.i += 1
    jax.block_until_ready((self.state, out))

  def components(self, steps: int, repeats: int) -> dict[str, float]:
    """Milliseconds per step of the forward pass, the backward pass, the
    optimizer update and Python dispatch.

    Forward and forward+backward are jitted and timed apart (backward is the
    second minus the first); the update is timed as `steps` updates on fixed
    gradients in one jitted loop, so that its own tiny call's dispatch does not
    count. Dispatch is how long a call of the whole step takes to return (its
    work runs asynchronously).
    """
    from flax import nnx  # pylint: disable=import-outside-toplevel
    ex = self.ex

    def forward(graphdef, state, batch):
      return ex.loss_and_metrics(nnx.merge(graphdef, state)[0], batch)[0]

    def forward_backward(graphdef, state, batch):
      return nnx.grad(ex.loss_and_metrics, has_aux=True)(nnx.merge(graphdef, state)[0], batch)[0]

    def update(graphdef, state, grads):
      model, opt = nnx.merge(graphdef, state)
      opt.update(model, grads)
      return nnx.state((model, opt))

    def updates(graphdef, state, grads):
      return jax.lax.fori_loop(0, steps, lambda i, s: update(graphdef, s, grads), state)

    fwd = jax.jit(forward, static_argnums=0)
    fwd_bwd = jax.jit(forward_backward, static_argnums=0)
    upd = jax.jit(updates, static_argnums=0)
    grads = fwd_bwd(self.graphdef, self.state, self.batches[0])
    jax.block_until_ready((fwd(self.graphdef, self.state, self.batches[0]),
                           upd(self.graphdef, self.state, grads)))
    calls = {
        "forward": lambda i: fwd(self.graphdef, self.state, self.batches[i % len(self.batches)]),
        "forward+backward": lambda i: fwd_bwd(self.graphdef, self.state,
                                              self.batches[i % len(self.batches)]),
    }
    times = {k: [] for k in (*calls, "optimizer", "dispatch")}
    for _ in range(repeats):
      for k, call in calls.items():
        t0 = time.perf_counter()
        for i in range(steps):
          out = call(i)
        jax.block_until_ready(out)
        times[k].append((time.perf_counter() - t0) / steps)
      t0 = time.perf_counter()
      jax.block_until_ready(upd(self.graphdef, self.state, grads))
      times["optimizer"].append((time.perf_counter() - t0) / steps)
      jax.block_until_ready(self.state)
      t0 = time.perf_counter()
      self.state, out = self.step(self.graphdef, self.state, self.batches[0])
      times["dispatch"].append(time.perf_counter() - t0)
      jax.block_until_ready((self.state, out))
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    return {"forward_ms": med["forward"],
            "backward_ms": med["forward+backward"] - med["forward"],
            "optimizer_ms": med["optimizer"], "dispatch_ms": med["dispatch"]}

  def compiles_after_value_switch(self) -> int:
    """Compilations of the step over a run and one more step at other schedule values.

    The same model and optimizer transform, the same kind of schedule with
    other numbers (the rate 0.1 instead of 0.3) swapped into the optimizer
    state: the schedule's numbers are leaves of that state, so this must not
    compile again.
    """
    graphdef, other = self._init(lr=0.1)
    before = self.step._cache_size()  # pylint: disable=protected-access
    jax.block_until_ready(self.step(graphdef, other, self.batches[0]))
    return self.compiled + self.step._cache_size() - before  # pylint: disable=protected-access


# --- PyTorch ------------------------------------------------------------------


def _torch_scheduler(name: str, opt, lr: float):
  """The example's schedules as PyTorch schedulers, stepped once per epoch."""
  import torch  # pylint: disable=import-outside-toplevel
  if name == "none":
    return None
  if name == "cosine":  # lr to 0.01 over 20 epochs (the example holds 0.01 after)
    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=20, eta_min=0.01)
  if name == "plateau":
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="max", factor=0.5, patience=2, threshold=1e-4, threshold_mode="abs",
        min_lr=1e-5)
  raise ValueError(f"no PyTorch scheduler for {name!r}")


def _torch_step_fn(model, opt):
  import torch.nn.functional as F  # pylint: disable=import-outside-toplevel

  def step(images_u8, labels):
    x = (images_u8.float() / 255.0 - 0.5) / 0.5
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), labels)
    loss.backward()
    opt.step()
    return loss

  return step


class TorchRunner:
  """The same network and loop in PyTorch eager."""

  def __init__(self, schedule: str, batches, lr: float = 0.3):
    import torch  # pylint: disable=import-outside-toplevel
    torch.manual_seed(0)
    self.name = schedule
    self.model = torch_lenet()()
    self.opt = torch.optim.SGD(self.model.parameters(), lr=lr)
    self.sched = _torch_scheduler(schedule, self.opt, lr)
    self.batches = [(torch.from_numpy(b["image"][:, None].copy()),
                     torch.from_numpy(b["label"].astype(np.int64))) for b in batches]
    self.step = _torch_step_fn(self.model, self.opt)
    self.i = 0
    t0 = time.perf_counter()
    self.run(1)
    self.first_call_s = time.perf_counter() - t0

  def components(self, steps: int, repeats: int) -> dict[str, float]:
    """Milliseconds per step of forward (with the loss), backward and optimizer."""
    import torch.nn.functional as F  # pylint: disable=import-outside-toplevel
    times = {"forward": [], "backward": [], "optimizer": []}
    for _ in range(repeats):
      acc = dict.fromkeys(times, 0.0)
      for i in range(steps):
        images, labels = self.batches[i % len(self.batches)]
        t0 = time.perf_counter()
        x = (images.float() / 255.0 - 0.5) / 0.5
        loss = F.cross_entropy(self.model(x), labels)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        acc["forward"] += t1 - t0
        acc["backward"] += t2 - t1
        acc["optimizer"] += t3 - t2
      for k in times:
        times[k].append(acc[k] / steps)
    return {f"{k}_ms": statistics.median(v) * 1e3 for k, v in times.items()} | {"dispatch_ms": None}

  def run(self, steps: int) -> None:
    for _ in range(steps):
      x, y = self.batches[self.i % len(self.batches)]
      self.step(x, y)
      self.i += 1
      if self.sched is not None and self.i % STEPS_PER_EPOCH == 0:
        if self.name == "plateau":
          self.sched.step(0.5)
        else:
          self.sched.step()


# --- end to end -----------------------------------------------------------------


def _e2e_jax(ex, schedule: str, epochs: int, target: float) -> dict[str, Any]:
  with tempfile.TemporaryDirectory() as workdir:
    t0 = time.perf_counter()
    history = ex.train_and_evaluate(
        ex.Config(schedule=schedule, epochs=epochs), workdir).history
    total = time.perf_counter() - t0
  return _first_reach(history, target, total, epochs)


def _first_reach(history, target: float, total_s: float, epochs: int) -> dict[str, Any]:
  elapsed, reached = 0.0, None
  for row in history:
    elapsed += row["time"]
    if row["test_acc"] >= target:
      reached = row["epoch"]
      break
  return {"reached_epoch": reached, "time_to_target_s": elapsed if reached else None,
          "epochs_run": len(history), "epochs_max": epochs,
          "best_test_acc": max(r["test_acc"] for r in history),
          "epoch_s": [r["time"] for r in history], "total_s": total_s}


def _e2e_torch(ex, schedule: str, epochs: int, target: float) -> dict[str, Any]:
  import torch  # pylint: disable=import-outside-toplevel
  ds = ex.input_pipeline.load(None)
  train_x = torch.from_numpy(ds["train_images"][:, None].copy())
  train_y = torch.from_numpy(ds["train_labels"].astype(np.int64))
  test_x = torch.from_numpy(ds["test_images"][:, None].copy())
  test_y = torch.from_numpy(ds["test_labels"].astype(np.int64))
  torch.manual_seed(0)
  model = torch_lenet()()
  opt = torch.optim.SGD(model.parameters(), lr=0.3)
  sched = _torch_scheduler(schedule, opt, 0.3)
  step = _torch_step_fn(model, opt)
  history = []
  t_start = time.perf_counter()
  for epoch in range(epochs):
    t0 = time.perf_counter()
    order = torch.from_numpy(ex.input_pipeline.epoch_order(0, epoch, len(train_x)))
    model.train()
    for i in range(0, len(order), BATCH):  # the last batch partial, as the example's
      idx = order[i:i + BATCH]
      step(train_x[idx], train_y[idx])
    model.eval()
    correct = 0
    with torch.no_grad():
      for i in range(0, len(test_x), 4 * BATCH):
        x = (test_x[i:i + 4 * BATCH].float() / 255.0 - 0.5) / 0.5
        correct += int((model(x).argmax(1) == test_y[i:i + 4 * BATCH]).sum())
    acc = correct / len(test_x)
    if sched is not None:
      if schedule == "plateau":
        sched.step(acc)
      else:
        sched.step()
    history.append({"epoch": epoch + 1, "test_acc": acc, "time": time.perf_counter() - t0})
    print(f"PyTorch epoch {epoch + 1}, Test Acc: {acc:.4f}, Time: {history[-1]['time']:.1f}s",
          file=sys.stderr, flush=True)
    if acc >= target:
      break
  return _first_reach(history, target, time.perf_counter() - t_start, epochs)


# --- the table ------------------------------------------------------------------


def _table(rows: list[dict[str, Any]], e2e_target: float | None) -> str:
  head = ["implementation", "schedule", "images/s", "ms/step", "×PyTorch", "first call (s)",
          "compiles", "forward ms", "backward ms", "optimizer ms", "dispatch ms"]
  if e2e_target is not None:
    head.append(f"time to {e2e_target:g} test acc (s)")
  lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
  for r in rows:
    cells = [r["implementation"], r["schedule"],
             "—" if r.get("images_per_s") is None else f"{r['images_per_s']:,.0f}",
             "—" if r.get("ms_per_step") is None else f"{r['ms_per_step']:.2f}",
             "—" if r.get("x_torch") is None else f"{r['x_torch']:.2f}x",
             "—" if r.get("first_call_s") is None else f"{r['first_call_s']:.2f}",
             "—" if r.get("compiles") is None else str(r["compiles"])]
    cells += ["—" if r.get(k) is None else f"{r[k]:.2f}"
              for k in ("forward_ms", "backward_ms", "optimizer_ms", "dispatch_ms")]
    if e2e_target is not None:
      e = r.get("e2e")
      if e is None:
        cells.append("—")
      elif e["reached_epoch"] is None:
        cells.append(f"not reached in {e['epochs_run']} epochs (best {e['best_test_acc']:.4f})")
      else:
        cells.append(f"{e['time_to_target_s']:.0f} (epoch {e['reached_epoch']})")
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  """Runs the benchmark, prints the table and returns the results."""
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--steps", type=int, default=20, help="steps per timed block")
  parser.add_argument("--repeats", type=int, default=15)
  parser.add_argument("--no-torch", action="store_true", help="skip PyTorch")
  parser.add_argument("--torch-threads", type=int, metavar="N",
                      help="torch.set_num_threads(N) (default: PyTorch's own choice)")
  parser.add_argument("--no-reference", action="store_true",
                      help="skip the straightforward Flax LeNet")
  parser.add_argument("--e2e", action="store_true",
                      help="also time the example to --target test accuracy on the real data")
  parser.add_argument("--e2e-schedule", default="cosine")
  parser.add_argument("--e2e-epochs", type=int, default=15, help="at most this many epochs")
  parser.add_argument("--target", type=float, default=0.91)
  parser.add_argument("--json", metavar="PATH", help="also write the results here")
  parser.add_argument("--quick", action="store_true",
                      help="a few steps and repeats, no reference row: a smoke test, "
                           "not a measurement")
  args = parser.parse_args(argv)
  steps, repeats = (2, 2) if args.quick else (args.steps, args.repeats)

  ex = _import_example()
  torch_version, torch_threads = None, None
  if not args.no_torch:
    try:
      import torch  # pylint: disable=import-outside-toplevel
      if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
      torch_version, torch_threads = torch.__version__, torch.get_num_threads()
    except ImportError:
      pass

  batches = _synthetic_batches(8)
  runners: dict[tuple[str, str], Any] = {}
  for s in SCHEDULES:
    runners[("JAX example (train.py)", s)] = JaxRunner(ex, "auto", s, batches)
  if not (args.no_reference or args.quick):
    runners[(XLA_ROW, "none")] = JaxRunner(ex, "xla", "none", batches)
  if torch_version:
    for s in SCHEDULES:
      runners[("PyTorch eager", s)] = TorchRunner(s, batches)

  times = timing.interleaved({key: (lambda r=r: r.run(steps)) for key, r in runners.items()},
                             repeats=repeats, warmup=False, pause_s=PAUSE_S)

  rows = []
  for (impl, s), r in runners.items():
    t = timing.summary(times[(impl, s)], per=steps)
    row = {"implementation": impl, "schedule": s, "ms_per_step": t["median_s"] * 1e3,
           "min_ms_per_step": t["min_s"] * 1e3, "images_per_s": BATCH / t["median_s"],
           "first_call_s": r.first_call_s, "runs_ms": [x * 1e3 for x in t["runs_s"]],
           "compiles": r.compiles_after_value_switch() if isinstance(r, JaxRunner) else None}
    if s == "none":
      row.update(r.components(steps, max(repeats // 3, 2)))
    rows.append(row)
  torch_ips = {r["schedule"]: r["images_per_s"] for r in rows if r["implementation"] == "PyTorch eager"}
  for row in rows:
    base = torch_ips.get("none" if row["implementation"] == XLA_ROW else row["schedule"])
    row["x_torch"] = row["images_per_s"] / base if base else None

  if args.e2e:
    e2e_jax = {"implementation": "JAX example, end to end (real data)",
               "schedule": args.e2e_schedule,
               "e2e": _e2e_jax(ex, args.e2e_schedule, args.e2e_epochs, args.target)}
    rows.append(e2e_jax)
    if torch_version:
      rows.append({"implementation": "PyTorch eager, end to end (real data)",
                   "schedule": args.e2e_schedule,
                   "e2e": _e2e_torch(ex, args.e2e_schedule, args.e2e_epochs, args.target)})

  device = jax.devices()[0]
  report = {
      "quick": args.quick,
      "machine": timing.machine(),
      "device": f"{device.platform} ({device.device_kind}) x{jax.device_count()}",
      "jax": jax.__version__, "torch": torch_version, "torch_threads": torch_threads,
      "xla_flags": os.environ.get("XLA_FLAGS", ""),
      "batch": BATCH, "steps_per_block": steps, "repeats": repeats,
      "target": args.target if args.e2e else None, "rows": rows,
  }
  print(f"Fashion-MNIST LeNet training step, batch {BATCH}: JAX {jax.__version__} on "
        f"{report['device']}; {report['machine']}; "
        + (f"PyTorch {torch_version} with {torch_threads} thread(s)" if torch_version
           else "PyTorch not installed: its rows are skipped")
        + f"; median of {repeats} blocks of {steps} steps.\n")
  print(_table(rows, args.target if args.e2e else None))
  if args.json:
    with open(args.json, "w") as f:
      json.dump(report, f, indent=1)
  return report


if __name__ == "__main__":
  main(sys.argv[1:])
