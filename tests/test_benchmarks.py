"""Smoke tests of the benchmark scripts: each runs its `--quick` size in-process,
once, here (a deleted script fails its test), and of their timing helper.

These check that every script still runs end to end and prints a table with
the expected rows and columns holding positive finite numbers; they assert no
timing (the numbers of a smoke size mean nothing, and CI machines are noisy).
"""

import importlib.util
import json
import math
import pathlib
import re
import sys
import time

import jax.numpy as jnp
import numpy as np
import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # where a script finds `timing`, as when run

import timing  # noqa: E402  pylint: disable=wrong-import-position

SCRIPTS = ("schedule_overhead", "plateau_overhead", "sweep_throughput", "train_throughput",
           "end_to_end", "step_profile", "branch_cost")


def _load(name):
  path = BENCHMARKS / f"{name}.py"
  assert path.exists(), f"{path} is missing: the benchmarks README and this test list it"
  spec = importlib.util.spec_from_file_location(f"_bench_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _table(out: str, index: int = 0) -> tuple[list[str], list[list[str]]]:
  """The header and body rows of the `index`-th markdown table in `out`."""
  tables, previous = [], False
  for l in out.splitlines():
    row = l.startswith("|")
    if row and not previous:
      tables.append([])
    if row:
      tables[-1].append(l)
    previous = row
  assert len(tables) > index, out
  lines = tables[index]
  assert len(lines) >= 3, out
  split = lambda l: [c.strip() for c in l.strip().strip("|").split("|")]
  assert set(lines[1].replace("|", "").replace("-", "").replace(":", "").strip()) == set(), lines[1]
  return split(lines[0]), [split(l) for l in lines[2:]]


def _number(cell: str) -> float:
  m = re.fullmatch(r"([0-9][0-9,]*\.?[0-9]*)x?(?: \(epoch \d+\))?", cell)
  assert m, f"not a number: {cell!r}"
  return float(m.group(1).replace(",", ""))


def _positive_finite(x) -> bool:
  return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_schedule_overhead_quick(tmp_path, capsys):
  bench = _load("schedule_overhead")
  path = tmp_path / "out.json"
  report = bench.main(["--quick", "--json", str(path)])
  head, rows = _table(capsys.readouterr().out)

  assert head[:2] == ["schedule", "optax equivalent"]
  assert head[2:4] == ["SGD 64 ×const", "SGD 64 ×optax"]
  assert head[-4:] == ["compile (ms)", "eager µs", "optax eager µs", "torch step() µs"]
  names = [r[0] for r in rows]
  saved = json.loads(path.read_text())
  assert names == list(saved["schedules"]) == list(report["schedules"])
  by_name = dict(zip(names, rows))
  for name in ("constant", "cosine_decay"):  # exported since the start
    row = by_name[name]
    assert all(_number(c) > 0 for c in (row[2], row[3], row[4], row[5], row[6])), row
  for row in rows:
    assert len(row) == len(head), row
    if "missing" in row[1]:
      continue
    for cell in row[2:]:
      assert cell == "—" or _number(cell) > 0, row

  assert saved["configs"] == ["SGD 64"] == report["configs"]
  for name, r in saved["schedules"].items():
    if r["missing"]:
      continue
    cell = r["scan"]["SGD 64"]
    assert _positive_finite(cell["us_per_step"]) and _positive_finite(cell["x_const"]), name
    assert _positive_finite(r["eager_us"]) and _positive_finite(r["compile_ms"]), name
    if r["optax"]:
      assert _positive_finite(cell["x_optax"]), name
      assert math.isfinite(r["optax_max_rel_diff"]), name


def test_train_throughput_quick(tmp_path, capsys):
  bench = _load("train_throughput")
  path = tmp_path / "out.json"
  bench.main(["--quick", "--json", str(path)])
  head, rows = _table(capsys.readouterr().out)

  assert head == ["implementation", "schedule", "images/s", "ms/step", "×PyTorch",
                  "first call (s)", "compiles", "forward ms", "backward ms", "optimizer ms",
                  "dispatch ms"]
  saved = json.loads(path.read_text())
  jax_rows = [r for r in rows if r[0] == "JAX example (train.py)"]
  assert [r[1] for r in jax_rows] == ["none", "cosine", "plateau"]
  torch_rows = [r for r in rows if r[0] == "PyTorch eager"]
  assert [r[1] for r in torch_rows] == ([] if saved["torch"] is None
                                        else ["none", "cosine", "plateau"])
  for row in jax_rows:
    assert _number(row[2]) > 0 and _number(row[3]) > 0 and _number(row[5]) > 0, row
    assert row[6] == "1", f"switching schedule values recompiled the step: {row}"
  none_row = jax_rows[0]
  assert _number(none_row[7]) > 0 and _number(none_row[10]) > 0, none_row  # forward, dispatch
  for r in saved["rows"]:
    assert _positive_finite(r["images_per_s"]) and _positive_finite(r["ms_per_step"]), r


def test_end_to_end_quick(tmp_path, capsys):
  bench = _load("end_to_end")
  ex, _ = bench._import_example()  # pylint: disable=protected-access
  rng = np.random.default_rng(0)  # a small generated dataset cached as the real one is
  arrays = {"train_images": rng.integers(0, 256, (512, 28, 28), dtype=np.uint8),
            "train_labels": rng.integers(0, 10, 512).astype(np.uint8),
            "test_images": rng.integers(0, 256, (256, 28, 28), dtype=np.uint8),
            "test_labels": rng.integers(0, 10, 256).astype(np.uint8)}
  ex.input_pipeline.write_cache(tmp_path / "data", arrays)
  path = tmp_path / "out.json"
  report = bench.main(["--quick", "--data-dir", str(tmp_path / "data"), "--json", str(path)])
  out = capsys.readouterr().out
  head, rows = _table(out)

  assert head == bench.COLUMNS
  saved = json.loads(path.read_text())
  assert saved == json.loads(json.dumps(report)) and saved["epochs"] == 2
  with_torch = saved["torch"] is not None
  assert ("PyTorch not installed" in out) == (not with_torch)
  impls = [bench.JAX_ROW, bench.TORCH_ROW] if with_torch else [bench.JAX_ROW]
  expected = [(i, s) for s in ("cosine", "plateau", "all, one after another") for i in impls]
  # Then the main command itself: --compare, two runs at a time (auto, on a CPU).
  together = (bench.JAX_ROW, "all, --compare 2 at a time")
  assert [(r[0], r[1]) for r in rows] == expected + [together]
  *rows, last = rows
  *saved_rows, saved_last = saved["rows"]
  assert last[2] == "4" and _number(last[5]) > 0 and last[3] == last[4] == last[6] == "—"
  assert (last[8] != "—") == with_torch and (not with_torch or _number(last[8]) > 0)
  # The same programs on the same batches: each run's accuracies equal its run alone.
  assert saved_last["same_accuracies"] is True
  assert saved_last["test_acc"] == {r["schedule"]: r["test_acc"] for r in saved_rows[:-1 - with_torch]
                                    if r["implementation"] == bench.JAX_ROW}
  for row in rows:
    assert len(row) == len(head), row
    assert row[2] == ("3" if row[1].startswith("all") else "2"), row
    assert all(_number(c) > 0 for c in row[3:6]), row
    if not row[1].startswith("all"):
      assert 0 <= _number(row[6]) <= 1, row
    if row[0] == bench.JAX_ROW and with_torch:
      assert _number(row[7]) > 0 and _number(row[8]) > 0, row
  for r in saved_rows:
    assert all(_positive_finite(t) for t in r["epoch_s"]) and _positive_finite(r["total_s"]), r


def test_branch_cost_quick(tmp_path, capsys):
  bench = _load("branch_cost")
  report = bench.main(["--quick", "--json", str(tmp_path / "out.json")])
  head, rows = _table(capsys.readouterr().out)
  assert head == bench.COLUMNS
  assert [r[0] for r in rows] == ["wsd cooled at 2 over 2", "wsd cooled at 4 over 2",
                                  "cosine to 0 (1 epoch warmup)"]
  for row in rows[:2]:  # each branch bit for bit its separate run (threads, on the CPU)
    assert row[3] == row[5] and _number(row[3]) > 0, row
  assert json.loads((tmp_path / "out.json").read_text()) == json.loads(json.dumps(report))
  assert _positive_finite(report["branched_s"]) and _positive_finite(report["separate_s"])
  assert report["target"] == pytest.approx(1.1 * (4 + 2 * 2) / (4 + 6))


def test_plateau_overhead_quick(tmp_path, capsys):
  bench = _load("plateau_overhead")
  path = tmp_path / "out.json"
  bench.main(["--quick", "--json", str(path)])
  head, rows = _table(capsys.readouterr().out)
  assert head[0] == "variant"
  assert [r[0] for r in rows] == list(bench.VARIANTS)
  for row in rows:
    assert all(_number(c) > 0 for c in row[1:]), row
  saved = json.loads(path.read_text())
  for size in saved["results"].values():
    for name, r in size.items():
      assert _positive_finite(r["us_per_step"]) and _positive_finite(r["ratio"]), name


def test_sweep_throughput_quick(tmp_path, capsys):
  bench = _load("sweep_throughput")
  report = bench.main(["--quick", "--json", str(tmp_path / "out.json")])
  head, rows = _table(capsys.readouterr().out)
  assert head[:3] == ["K", "variant", "configuration-steps/s"]
  assert [r[1] for r in rows] == list(bench.VARIANTS) == ["sequential", "threads", "vmap"]
  for row in rows:
    assert all(_number(c) > 0 for c in row[2:]), row
  assert json.loads((tmp_path / "out.json").read_text()) == json.loads(json.dumps(report))
  results = report["results"]["1"]
  assert results["sequential"]["ratio"] == 1.0
  for r in results.values():
    assert _positive_finite(r["config_steps_per_s"]) and _positive_finite(r["ratio"])


def test_step_profile_quick(tmp_path, capsys):
  bench = _load("step_profile")
  path = tmp_path / "out.json"
  report = bench.main(["--quick", "--top", "1000", "--json", str(path)])
  out = capsys.readouterr().out
  head, rows = _table(out, 0)
  assert head == ["ms/step", "fastest ms/step", "images/s", "compile (s)", "MFLOP/step", "GFLOP/s"]
  assert len(rows) == 1 and all(_number(c) > 0 for c in rows[0]), rows
  head, rows = _table(out, 1)
  assert head[:3] == ["phase", "ms/step", "share of step"]
  assert [(r[0], r[4]) for r in rows] == [("forward", "forward"), ("backward", "forward+backward"),
                                          ("optimizer + rest", "train step")]
  saved = json.loads(path.read_text())
  assert saved == json.loads(json.dumps(report))
  assert (saved["steps"], saved["batch"]) == (3, 8)
  phases = saved["phases"]
  assert list(phases) == list(bench.PHASES) == ["forward", "forward+backward", "train step"]
  for name, p in phases.items():
    assert _positive_finite(p["ms_per_step"]) and _positive_finite(p["compile_s"]), name
    assert len(p["runs_ms"]) == 2 and all(_positive_finite(t) for t in p["runs_ms"]), name
  assert _positive_finite(saved["step"]["gflops_per_s"])
  assert all(_positive_finite(g) for g in saved["copy_gb_per_s"].values())

  # FLOPs against the network's matrix products at batch 8 (2 x the multiply-adds):
  # conv1 6 x 25 x (28*28*8), conv2 16 x 150 x (10*10*8), the dense layers 400-120-84-10.
  b = 8
  dense = b * (400 * 120 + 120 * 84 + 84 * 10)
  forward = 2 * (6 * 25 * 28 * 28 * b + 16 * 150 * 10 * 10 * b + dense)
  # backward: both convolutions' weight gradients, conv2's patch gradient (conv1's input
  # needs none), the dense layers' weight and input gradients (not the first's input).
  backward = 2 * (6 * 25 * 28 * 28 * b + 2 * 16 * 150 * 10 * 10 * b + dense
                  + b * (120 * 400 + 84 * 120 + 10 * 84))
  assert 1.0 <= phases["forward"]["flops_per_step"] / forward < 1.1, phases["forward"]
  fb = phases["forward+backward"]["flops_per_step"]
  assert 1.0 <= fb / (forward + backward) < 1.1, fb
  step = saved["step"]["flops_per_step"]
  assert fb <= step < 1.05 * fb and phases["train step"]["flops_per_step"] == pytest.approx(step, rel=0.01)

  per_op = saved["per_op"]
  if importlib.util.find_spec("xprof") is None:  # CI installs no bench extra
    assert "xprof" in per_op["skipped"] and "Per-op profile skipped" in out, per_op
    return
  assert "skipped" not in per_op, per_op
  head, rows = _table(out, 2)
  assert head[:3] == ["op", "ms/step", "% of op time"] and len(rows) == len(per_op["ops"]) > 0
  ops = per_op["ops"]
  assert len(ops) == per_op["op_count"] > 20
  assert all(_positive_finite(r["ms_per_step"]) for r in ops)
  assert sum(r["ms_per_step"] for r in ops) == pytest.approx(per_op["all_ops_ms"], rel=1e-6)
  by_shape = {(r["shape"], r["pass"]): r for r in ops}
  conv1 = by_shape[("f32[6,6272]", "fwd")]  # conv1's product: 6 channels x 28*28*8 positions
  assert conv1["jax_op"] == "dot_general" and _positive_finite(conv1["gflops_per_s"]), conv1
  assert ("f32[25,6]", "bwd") in by_shape  # conv1's weight gradient (5*5*1 x 6)
  assert ("f32[150,16]", "bwd") in by_shape  # conv2's (5*5*6 x 16)
  busy = [t["busy"] for t in per_op["threads"].values()]
  assert all(0 <= x <= 1 for x in busy) and max(busy) > 0, per_op["threads"]


def test_every_benchmark_script_has_its_smoke_test():
  scripts = {p.stem for p in BENCHMARKS.glob("*.py")} - {"timing", "torch_lenet"}
  assert scripts == set(SCRIPTS)
  for name in SCRIPTS:
    assert f"test_{name}_quick" in globals(), name
  readme = (BENCHMARKS / "README.md").read_text()
  for name in SCRIPTS:
    assert f"`{name}.py`" in readme, name


def test_timing_helper():
  calls = []

  def run(name, seconds):
    def f():
      calls.append(name)
      time.sleep(seconds)
      return jnp.ones(3) * seconds
    return f

  times = timing.interleaved({"a": run("a", 0.002), "b": run("b", 0.02)}, repeats=3)
  assert calls == ["a", "b"] + ["a", "b"] * 3  # a warm-up call each, then taking turns
  assert [len(t) for t in times.values()] == [3, 3]
  assert min(times["b"]) >= 0.02 and min(times["a"]) >= 0.002
  got = timing.summary([3.0, 1.0, 2.0, 10.0, 4.0], per=2)
  assert (got["median_s"], got["min_s"], got["runs_s"]) == (1.5, 0.5, [1.5, 0.5, 1.0, 5.0, 2.0])
  fn, seconds = timing.compiled(lambda x: x * 2.0, jnp.arange(3.0))
  assert seconds > 0 and list(map(float, fn(jnp.arange(3.0)))) == [0.0, 2.0, 4.0]
  us = timing.per_step_us([3.0, 1.0, 2.0, 10.0, 4.0], per=2)
  assert (us["us_per_step"], us["min_us_per_step"]) == (1.5e6, 0.5e6)
  assert us["runs_us"] == [1.5e6, 0.5e6, 1.0e6, 5.0e6, 2.0e6]
  assert re.fullmatch(r".+, [1-9][0-9]* CPU cores", timing.machine())


def test_torch_lenet_is_the_articles_network():
  torch = pytest.importorskip("torch")
  from torch_lenet import torch_lenet  # pylint: disable=import-outside-toplevel
  model = torch_lenet()()
  # conv 1->6 (5x5), conv 6->16 (5x5), 400->120->84->10, with biases.
  want = (6 * 25 + 6) + (16 * 6 * 25 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
  assert sum(p.numel() for p in model.parameters()) == want
  assert tuple(model(torch.zeros(2, 1, 28, 28)).shape) == (2, 10)
