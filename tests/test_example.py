"""The Fashion-MNIST example: a smoke run on a small generated dataset (no
download), and on the real data: learning, outputs (TensorBoard included),
resume, one trace per run and per --compare, schedules, the command line, and
two devices against one.

The real data comes from the Debian package ``dataset-fashion-mnist``
(installed by ``.ci/setup``) or a previous run's cache; without either those
tests fail with the example's own message saying how to get it.
"""

import collections
import dataclasses
import gzip
import hashlib
import importlib.util
import json
import math
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from flax import nnx

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "fashion_mnist"
sys.path.insert(0, str(EXAMPLE))

import compare  # noqa: E402  pylint: disable=wrong-import-position
import input_pipeline  # noqa: E402  pylint: disable=wrong-import-position
import lrjax  # noqa: E402  pylint: disable=wrong-import-position
import main  # noqa: E402  pylint: disable=wrong-import-position
import reporting  # noqa: E402  pylint: disable=wrong-import-position
import schedules  # noqa: E402  pylint: disable=wrong-import-position
import train  # noqa: E402  pylint: disable=wrong-import-position

def count_traces(monkeypatch, names=("train_step", "eval_step")):
  """How many times each of train.py's step functions `names` is traced from
  now on: a wrapper that counts its calls (made only while JAX traces), with
  the jitted steps and JAX's caches cleared first."""
  counts = collections.Counter()
  for name in names:
    real = getattr(train, name)

    def wrapper(*args, _real=real, _name=name):
      counts[_name] += 1
      return _real(*args)

    monkeypatch.setattr(train, name, wrapper)
  train.jitted_steps.cache_clear()
  jax.clear_caches()
  return counts


# The upstream gzip headers' time stamps (from the files tfds registers).
UPSTREAM_MTIME = {"train": 0x59A7E9DE, "t10k": 0x59A7E9F3}


# --- float64 references of the named schedules, from their definitions --------


def _cos_anneal(start, end, frac):
  return end + (start - end) * (1 + math.cos(math.pi * frac)) / 2


def _one_cycle(t, max_lr, total, pct=0.3, div=25.0, final_div=1e4):
  """torch.optim.lr_scheduler.OneCycleLR (two phases, cosine)."""
  init, low = max_lr / div, max_lr / div / final_div
  end1, end2 = pct * total - 1, total - 1
  if t <= end1:
    return _cos_anneal(init, max_lr, t / end1)
  return _cos_anneal(max_lr, low, (min(t, end2) - end1) / (end2 - end1))


def _one_cycle_momentum(t, total, base=0.85, top=0.95, pct=0.3):
  """OneCycleLR's momentum (cycle_momentum=True): max_momentum down to
  base_momentum while the rate rises, back up while it falls."""
  end1, end2 = pct * total - 1, total - 1
  if t <= end1:
    return _cos_anneal(top, base, t / end1)
  return _cos_anneal(base, top, (min(t, end2) - end1) / (end2 - end1))


def _reference(name, t, spe, epochs, lr):
  """The rate at optimizer step t under the named schedule (float64)."""
  e = t // spe
  total = epochs * spe
  if name in ("none", "plateau"):
    return lr
  if name == "sqrt":
    return 0.1 * (e + 1) ** -0.5
  if name == "multistep":
    return lr * 0.5 ** ((e >= 15) + (e >= 30))
  if name == "cosine":
    return _cos_anneal(lr, 0.01, e / 20) if e <= 20 else 0.01
  if name == "warmup-cosine":
    w, d = 5 * spe, 20 * spe
    if t < w:
      return lr * t / w
    return _cos_anneal(lr, 0.01, (t - w) / (d - w)) if t < d else 0.01
  if name == "exponential":
    return lr * 0.9 ** (t / spe)
  if name in ("one-cycle", "one-cycle-momentum"):
    return _one_cycle(t, lr, total)
  if name == "wsd":  # one epoch of warmup, then flat, then 1-sqrt over the last fifth
    w, d = spe, total // 5  # (a tenth of the run would be three epochs)
    if t < w:
      return lr * t / w
    if t < total - d:
      return lr
    return lr * (1 - math.sqrt((t - (total - d)) / d)) if t < total else 0.0
  raise KeyError(name)


STEPS = lambda spe: [0, 1, spe - 1, spe, 2 * spe + 7, 5 * spe - 1, 5 * spe, 7000, 15 * spe - 1,
                     15 * spe, 20 * spe - 1, 20 * spe, 24 * spe, 27 * spe + 5, 30 * spe - 1,
                     30 * spe + 9]


@pytest.mark.parametrize("name", list(schedules.SCHEDULES))
def test_named_schedules_match_their_definitions(name):
  spe, epochs, lr = 469, 30, 0.3
  config = train.Config(schedule=name, epochs=epochs, learning_rate=lr)
  plan = schedules.make_plan(config, spe)
  steps = np.array(STEPS(spe), np.int32)
  got = np.asarray(jax.jit(jax.vmap(plan.schedule))(steps))
  want = [_reference(name, t, spe, epochs, lr) for t in STEPS(spe)]
  np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-9)
  if name == "one-cycle-momentum":
    np.testing.assert_allclose(jax.vmap(plan.momentum)(steps),
                               [_one_cycle_momentum(t, epochs * spe) for t in STEPS(spe)], rtol=2e-6)
  else:
    assert plan.momentum is None  # plain SGD, as the reference


# --- data ----------------------------------------------------------------------


def _registered_checksums():
  """tfds' registered sha256 per file name, read from its checksum file."""
  spec = importlib.util.find_spec("tensorflow_datasets")
  path = pathlib.Path(spec.submodule_search_locations[0]) / "url_checksums" / "fashion_mnist.txt"
  out = {}
  for line in path.read_text().splitlines():
    if line.strip():
      _, _, checksum, fname = line.split("\t")
      out[fname] = checksum
  return out


def test_debian_files_restore_to_the_upstream_bytes():
  debian = pathlib.Path(input_pipeline.DEBIAN_DIR)
  if not all((debian / f).exists() for f in input_pipeline.FILES):
    pytest.fail(f"{debian} lacks Fashion-MNIST: apt-get install dataset-fashion-mnist")
  checksums = _registered_checksums()
  assert sorted(checksums) == sorted(input_pipeline.FILES)
  for fname in input_pipeline.FILES:
    raw = (debian / fname).read_bytes()
    restored = input_pipeline.restore_gzip_header(
        raw, fname[:-3], UPSTREAM_MTIME[fname.split("-")[0]])
    assert hashlib.sha256(raw).hexdigest() != checksums[fname]  # why restoring is needed
    assert hashlib.sha256(restored).hexdigest() == checksums[fname]
    assert gzip.decompress(restored) == gzip.decompress(raw)


def test_missing_data_stops_with_one_clear_message(tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(input_pipeline, "_reachable", lambda *a, **k: False)  # as if offline
  with pytest.raises(input_pipeline.DataError, match="apt-get install dataset-fashion-mnist"):
    input_pipeline.load(tmp_path / "cache", debian_dir=tmp_path / "no-debian")

  monkeypatch.setattr(input_pipeline, "DEBIAN_DIR", str(tmp_path / "no-debian"))
  with pytest.raises(SystemExit) as e:
    main.main(["--data-dir", str(tmp_path / "cache"), "--epochs", "1",
               "--workdir", str(tmp_path / "w")])
  err = capsys.readouterr().err.strip()
  assert "Fashion-MNIST" in e.value.code and "dataset-fashion-mnist" in e.value.code
  assert e.value.code.count("\n") == 0, err


# --- training on a generated dataset ----------------------------------------------


def _generated_data(data_dir, n_train=384, n_test=128, seed=0):
  """A small Fashion-MNIST stand-in cached as the real one is: ten fixed
  random templates, one per class, plus noise. Returns the data directory."""
  rng = np.random.default_rng(seed)
  templates = rng.integers(0, 256, (10, 28, 28))

  def split(n):
    labels = rng.integers(0, 10, n)
    images = np.clip(templates[labels] + rng.normal(0, 40, (n, 28, 28)), 0, 255)
    return images.astype(np.uint8), labels

  (a, b), (c, d) = split(n_train), split(n_test)
  input_pipeline.write_cache(data_dir, {"train_images": a, "train_labels": b,
                                        "test_images": c, "test_labels": d})
  return str(data_dir)


@pytest.mark.parametrize("damage", ["shape", "missing", "empty"])
def test_a_file_that_is_no_fashion_mnist_cache_is_one_clear_error(damage, tmp_path):
  images, labels = np.zeros((4, 28, 28), np.uint8), np.zeros(4, np.int64)
  arrays = {"train_images": images, "train_labels": labels,
            "test_images": images, "test_labels": labels}
  if damage == "shape":
    arrays["test_images"] = np.zeros((4, 32, 32), np.uint8)
  elif damage == "missing":
    del arrays["train_labels"]
  else:
    arrays["test_images"], arrays["test_labels"] = images[:0], labels[:0]
  input_pipeline.write_cache(tmp_path, arrays)
  with pytest.raises(input_pipeline.DataError, match="is not a Fashion-MNIST cache; delete it"):
    input_pipeline.load(tmp_path)


def test_processes_that_start_together_prepare_the_data_once(tmp_path, monkeypatch):
  """Two loaders on an empty data directory (as two processes of one host
  start): one prepares, the other waits for its cache and reads it."""
  import threading  # pylint: disable=import-outside-toplevel
  import time  # pylint: disable=import-outside-toplevel
  calls = []

  def slow_prepare(data_dir, debian_dir, cache):
    calls.append(data_dir)
    time.sleep(0.5)  # long enough for the other loader to arrive meanwhile
    _generated_data(data_dir, n_train=8, n_test=4, seed=len(calls))

  monkeypatch.setattr(input_pipeline, "_prepare", slow_prepare)
  out = [None, None]

  def run(i):
    out[i] = input_pipeline.load(tmp_path / "data")

  threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
  for t in threads:
    t.start()
  for t in threads:
    t.join(timeout=30)
  assert len(calls) == 1
  assert out[0] is not None and out[1] is not None
  for key in ("train_images", "train_labels", "test_images", "test_labels"):
    np.testing.assert_array_equal(out[0][key], out[1][key])
  assert out[0]["train_images"].shape == (8, 28, 28)


def _events(workdir):
  """tag -> {step: value} of the TensorBoard event files in `workdir`, read by
  TensorFlow's own reader."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  out = {}
  files = sorted(pathlib.Path(workdir).glob("events.out.tfevents.*"))
  assert files, f"no event file in {workdir}"
  for path in files:
    for event in tf.compat.v1.train.summary_iterator(str(path)):
      for v in event.summary.value:
        out.setdefault(v.tag, {})[event.step] = v.simple_value
  return out


def _assert_events_hold_the_history(workdir, spe):
  saved = json.loads((pathlib.Path(workdir) / "metrics.json").read_text())
  history, events = saved["history"], _events(workdir)
  for key, (tag, _) in reporting.METRICS.items():
    assert sorted(events[tag]) == [r["epoch"] for r in history], tag
    np.testing.assert_allclose([events[tag][r["epoch"]] for r in history],
                               [r[key] for r in history], rtol=1e-6, err_msg=tag)
  rates = events["lr/step"]
  assert sorted(rates) == list(range(len(history) * spe))
  for r in history:  # the per-step curve holds the rates metrics.json samples
    for i, rate in r["lr_curve"]:
      np.testing.assert_allclose(rates[(r["epoch"] - 1) * spe + i], rate, rtol=1e-6)


def test_smoke_run_on_generated_data(tmp_path, capsys, monkeypatch):
  data_dir = _generated_data(tmp_path / "data")
  config = train.Config(schedule="one-cycle-momentum", epochs=2, batch_size=32, data_dir=data_dir)
  traces = count_traces(monkeypatch)
  result = train.train_and_evaluate(config, tmp_path / "run")
  assert len(LINE.findall(capsys.readouterr().out)) == 2
  assert traces == {"train_step": 1, "eval_step": 1}
  history = result.history
  assert history[-1]["test_acc"] > 0.3 and history[-1]["train_loss"] < history[0]["train_loss"]
  spe, total = 384 // 32, 2 * 384 // 32
  for r in history:
    first, last = (r["epoch"] - 1) * spe, r["epoch"] * spe - 1
    np.testing.assert_allclose([r["lr"], r["lr_last"]],
                               [_one_cycle(first, 0.3, total), _one_cycle(last, 0.3, total)], rtol=2e-6)
    assert r["plateau_scale"] == 1.0
  # The optimizer state holds the momentum its last update used: OneCycleLR's.
  opt_state = nnx.to_pure_dict(result.state)[1]["opt_state"]  # an InjectHyperparamsState
  used = opt_state["hyperparams"]
  assert int(opt_state["count"]) == total
  np.testing.assert_allclose(used["momentum"], _one_cycle_momentum(total - 1, total), rtol=2e-6)
  np.testing.assert_allclose(used["learning_rate"], _one_cycle(total - 1, 0.3, total), rtol=2e-6)
  _assert_events_hold_the_history(tmp_path / "run", spe)
  for name in ("metrics.json", "metrics.csv", "plot.png"):
    assert (tmp_path / "run" / name).stat().st_size > 0


def test_adamw_trains_as_optax_adamw_on_the_same_batches(tmp_path, monkeypatch):
  """``--optimizer adamw``: the run's parameters after an epoch are those of a
  plain optax.adamw loop over the same batches from the same initialisation."""
  import optax  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(reporting, "plot", lambda *a: None)
  data_dir = _generated_data(tmp_path / "data", n_train=128, n_test=64)
  config = train.Config(schedule={"type": "constant", "value": 3e-3}, epochs=1, batch_size=32,
                        optimizer="adamw", weight_decay=5.0, data_dir=data_dir)
  result = train.train_and_evaluate(config, tmp_path / "run")

  ds = input_pipeline.load(data_dir)
  model = train.create_model(config)
  tx = optax.adamw(3e-3, weight_decay=5.0)  # decays each weight by 6e-5 of itself a step
  opt_state = tx.init(nnx.state(model, nnx.Param))
  idx, weight = input_pipeline.batch_indices(input_pipeline.epoch_order(0, 0, 128), 32)
  for i, w in zip(idx, weight):
    batch = {"image": ds["train_images"][i], "label": ds["train_labels"][i], "weight": w}
    grads, _ = nnx.grad(train.loss_and_metrics, has_aux=True)(model, batch)
    params = nnx.state(model, nnx.Param)
    updates, opt_state = tx.update(grads, opt_state, params)
    nnx.update(model, optax.apply_updates(params, updates))
  want, got = nnx.to_pure_dict(nnx.state(model)), nnx.to_pure_dict(result.state)[0]
  start = nnx.to_pure_dict(nnx.state(train.create_model(config)))
  assert max(np.abs(a - b).max() for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(start))) > 1e-3
  # Adam divides by the gradients' scale: where one is near 0, the jitted and
  # the eager loop's rounding move a weight by up to 2e-5 (a hundredth of a step).
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)
  used = lrjax.hyperparams(nnx.to_pure_dict(result.state)[1]["opt_state"])
  np.testing.assert_allclose([used["learning_rate"], used["weight_decay"]], [3e-3, 5.0], rtol=1e-6)


def test_compare_traces_once_per_structure_and_equals_separate_runs(tmp_path, capsys, monkeypatch):
  monkeypatch.setattr(reporting, "plot", lambda *a: None)  # a second per plot, checked elsewhere
  data_dir = _generated_data(tmp_path / "data", n_train=128, n_test=64)
  config = train.Config(epochs=1, batch_size=32, data_dir=data_dir)
  cos = lambda peak: {"type": "cosine_decay", "peak_value": peak, "decay_steps": 8,
                      "end_value": 0.01}
  named = {"cos-a": cos(0.05), "cos-b": cos(0.2)}
  traces = count_traces(monkeypatch)
  rows = compare.compare(config, named, tmp_path / "compare")
  # cos-b's schedule is swapped into the transform built for cos-a: one trace.
  assert traces == {"train_step": 1, "eval_step": 1}
  assert [r["schedule"] for r in rows] == list(named)
  assert "| cos-b |" in (tmp_path / "compare" / "comparison.md").read_text()
  capsys.readouterr()

  alone = train.train_and_evaluate(dataclasses.replace(config, schedule=cos(0.2)), tmp_path / "alone")
  swapped = json.loads((tmp_path / "compare" / "cos-b" / "metrics.json").read_text())["history"]
  strip = lambda h: [{k: v for k, v in r.items() if k != "time"} for r in h]
  assert strip(swapped) == strip(json.loads(json.dumps(alone.history)))
  np.testing.assert_allclose([swapped[0]["lr"], swapped[0]["lr_last"]],
                             [0.01 + 0.19 * (1 + math.cos(math.pi * t / 8)) / 2 for t in (0, 3)],
                             rtol=2e-6)
  for name in named:
    assert _events(tmp_path / "compare" / name)["test/accuracy"]


def test_compare_two_runs_at_a_time_equals_one_at_a_time(tmp_path, capsys, monkeypatch):
  monkeypatch.setattr(reporting, "plot", lambda *a: None)
  data_dir = _generated_data(tmp_path / "data", n_train=128, n_test=64)
  config = train.Config(epochs=2, batch_size=32, data_dir=data_dir)
  # Three kinds (the plateau run chained to its transform); the third waits for a free job.
  named = {"none": "none", "cos": {"type": "cosine_decay", "peak_value": 0.2, "decay_steps": 8},
           "plateau": "plateau"}
  compare.compare(config, named, tmp_path / "one", jobs=1)
  capsys.readouterr()
  rows = compare.compare(config, named, tmp_path / "two", jobs=2)
  out = capsys.readouterr().out
  assert [r["schedule"] for r in rows] == list(named)
  assert "3 runs, 2 at a time:" in out
  strip = lambda h: [{k: v for k, v in r.items() if k != "time"} for r in h]
  for name in named:
    one, two = (json.loads((tmp_path / d / name / "metrics.json").read_text())["history"]
                for d in ("one", "two"))
    assert strip(two) == strip(one)  # the same programs on the same batches: bit for bit
    assert len(re.findall(rf"^\[{name}\] Epoch \d+, Train Loss", out, re.M)) == 2
    assert sorted(p.name for p in (tmp_path / "two" / name / "checkpoints").iterdir()) == ["1", "2"]


def test_a_failed_run_stops_the_others_after_their_epoch_and_they_resume(tmp_path, monkeypatch,
                                                                         capsys):
  monkeypatch.setattr(reporting, "plot", lambda *a: None)
  data_dir = _generated_data(tmp_path / "data", n_train=128, n_test=64)
  config = train.Config(schedule="none", epochs=3, batch_size=32, data_dir=data_dir)
  real = train.train_and_evaluate

  def failing(c, workdir, **kw):
    if c.schedule == "multistep":
      raise RuntimeError("run failed")
    time.sleep(0.5)  # the other run has failed before this one's first epoch ends
    return real(c, workdir, **kw)

  monkeypatch.setattr(train, "train_and_evaluate", failing)
  with pytest.raises(RuntimeError, match="run failed"):
    compare.compare(config, {"none": "none", "multistep": "multistep"}, tmp_path / "cmp", jobs=2)
  assert "[none] Stopped after epoch 1; --resume continues" in capsys.readouterr().out
  run = tmp_path / "cmp" / "none"
  assert len(json.loads((run / "metrics.json").read_text())["history"]) == 1
  resumed = real(dataclasses.replace(config, resume=True), run)
  whole = real(config, tmp_path / "whole")
  strip = lambda h: [{k: v for k, v in r.items() if k != "time"} for r in h]
  assert strip(resumed.history) == strip(whole.history) and len(whole.history) == 3


def test_ctrl_c_ends_a_parallel_compare_with_one_line_and_every_run_resumable(tmp_path):
  data_dir = _generated_data(tmp_path / "data", n_train=1024, n_test=128)
  cmd = [sys.executable, str(EXAMPLE / "main.py"), "--compare", "none,sqrt", "--jobs", "2",
         "--epochs", "1000", "--batch-size", "32", "--data-dir", str(data_dir),
         "--workdir", str(tmp_path / "cmp"), "--no-progress"]
  p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env=dict(os.environ, JAX_PLATFORMS="cpu"))
  try:
    for line in p.stdout:  # wait until both runs are training
      if "Epoch 2," in line:
        break
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
  finally:
    p.kill()
  assert p.returncode == 130, err[-3000:]
  assert err.strip().splitlines()[-1] == (
      "main.py: interrupted; run again with --resume to continue from the last checkpoint")
  assert "Traceback" not in err
  for name in ("none", "sqrt"):
    assert f"[{name}] Stopped after epoch" in out
    history = json.loads((tmp_path / "cmp" / name / "metrics.json").read_text())["history"]
    assert 1 <= len(history) < 1000
    latest = max(int(d.name) for d in (tmp_path / "cmp" / name / "checkpoints").iterdir())
    assert latest == len(history)  # the last epoch printed is the last saved


def test_sigterm_while_the_first_epoch_compiles_and_trains_exits_143_without_a_crash(tmp_path):
  """Steps still in flight when the interpreter tears down can crash XLA
  (SIGSEGV, exit -11, in about one try of three here before main exited at once)."""
  data_dir = _generated_data(tmp_path / "data", n_train=8192, n_test=128)
  err, code = _sigterm(tmp_path / "run", data_dir, 2.0)
  assert code == 143, (code, err[-3000:])
  assert err.strip().splitlines() == [
      "main.py: stopped by SIGTERM; run again with --resume to continue from the last checkpoint"]


# Installed in the command by the next test: once main.py handles SIGTERM,
# SIGTERM arrives while a gc callback runs in the main thread, so the exception
# its handler raises is raised there, where Python can only report it
# ("Exception ignored in ...") and goes on.
_IN_GC_CALLBACK = """
import gc, os, signal, threading
def _terminate_inside(phase, info, _sent=[]):
  if (phase == "start" and not _sent and callable(signal.getsignal(signal.SIGTERM))
      and threading.current_thread() is threading.main_thread()):
    _sent.append(os.kill(os.getpid(), signal.SIGTERM))
    for _ in range(10000):  # Python bytecode: the handler runs here, inside the callback
      pass
gc.callbacks.append(_terminate_inside)
"""


def test_sigterm_raised_inside_a_gc_callback_still_stops_the_run(tmp_path):
  site = tmp_path / "site"
  site.mkdir()
  (site / "sitecustomize.py").write_text(_IN_GC_CALLBACK)
  data_dir = _generated_data(tmp_path / "data", n_train=8192, n_test=128)
  err, code = _sigterm(tmp_path / "run", data_dir, None, env={"PYTHONPATH": str(site)})
  assert code == 143, (code, err[-3000:])
  assert err.strip().splitlines() == [
      "main.py: stopped by SIGTERM; run again with --resume to continue from the last checkpoint"]


def _sigterm(workdir, data_dir, wait, env=None):
  """Starts a long run, SIGTERM `wait` s after its first line (None: none
  sent, `env` sends it); returns its stderr and exit status."""
  p = subprocess.Popen([sys.executable, str(EXAMPLE / "main.py"), "--epochs", "1000",
                        "--batch-size", "32", "--data-dir", str(data_dir),
                        "--workdir", str(workdir), "--no-progress"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env=dict(os.environ, JAX_PLATFORMS="cpu", **(env or {})))
  try:
    for line in p.stdout:  # the data is on the devices; the first epoch compiles and trains
      if line.startswith("JAX "):
        break
    if wait is not None:
      time.sleep(wait)
      p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
  finally:
    p.kill()
    p.communicate()
  return err, p.returncode


# --- training on the real data ----------------------------------------------------------

# A few thousand real images for two epochs; one-cycle over the run, batch 32.
SMOKE = train.Config(schedule="one-cycle", epochs=2, batch_size=32, seed=0,
                     train_subset=8000, test_subset=1000)
LINE = re.compile(r"^Epoch (\d+), Train Loss: ([\d.]+), Test Loss: ([\d.]+), "
                  r"Test Acc: ([\d.]+), LR: ([\deE.+-]+), Time: ([\d.]+)s$", re.M)


def test_smoke_run_learns_writes_outputs_and_compiles_once(tmp_path, capsys, monkeypatch):
  traces = count_traces(monkeypatch)
  result = train.train_and_evaluate(SMOKE, tmp_path)
  printed = LINE.findall(capsys.readouterr().out)

  history = result.history
  assert [r["epoch"] for r in history] == [1, 2]
  assert history[-1]["test_acc"] > 0.70  # chance is 0.10
  assert history[-1]["train_loss"] < history[0]["train_loss"]
  # One trace (so one compile) of each step for the whole run.
  assert traces == {"train_step": 1, "eval_step": 1}

  # The rate logged from inside the step is PyTorch's OneCycleLR at that step.
  spe = 8000 // 32
  for r in history:
    first, last = (r["epoch"] - 1) * spe, r["epoch"] * spe - 1
    np.testing.assert_allclose(
        [r["lr"], r["lr_last"]],
        [_one_cycle(first, 0.3, 2 * spe), _one_cycle(last, 0.3, 2 * spe)], rtol=2e-6)

  # Outputs: JSON and CSV hold what was printed, the plot is a PNG.
  saved = json.loads((tmp_path / "metrics.json").read_text())
  assert saved["history"] == history
  assert saved["schedule"]["type"] == "one_cycle" and saved["train_size"] == 8000
  csv_rows = (tmp_path / "metrics.csv").read_text().splitlines()
  assert csv_rows[0] == ",".join(reporting.COLUMNS)
  for line, r in zip(csv_rows[1:], history, strict=True):
    assert [float(x) for x in line.split(",")] == [float(r[c]) for c in reporting.COLUMNS]
  assert len(printed) == 2
  for (epoch, tr_loss, te_loss, te_acc, lr, _), r in zip(printed, history):
    assert int(epoch) == r["epoch"]
    assert tr_loss == f"{r['train_loss']:.4f}" and te_loss == f"{r['test_loss']:.4f}"
    assert te_acc == f"{r['test_acc']:.2f}" and lr == f"{r['lr']:.4g}"
  png = (tmp_path / "plot.png").read_bytes()
  assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
  _assert_events_hold_the_history(tmp_path, spe)


class _Interrupt(Exception):
  pass


def test_interrupted_then_resumed_run_equals_uninterrupted(tmp_path, monkeypatch, capsys):
  # Plateau with Keras patience 2 (lrjax 1) and an unreachable improvement
  # threshold: the first observation sets the best, the 2nd and 3rd are bad,
  # the 3rd reduces the rate for epoch 4. A resume that lost the bad count
  # saved after epoch 2 would train epoch 4 at 0.3.
  monkeypatch.setitem(schedules.SCHEDULES, "plateau", lambda lr, epochs, spe: schedules.Plan(
      lrjax.constant(lr),
      dict(factor=0.5, patience=1, mode="max", threshold=1.0, threshold_mode="abs")))
  config = train.Config(schedule="plateau", epochs=4, batch_size=64, seed=3,
                        train_subset=512, test_subset=256)
  whole = train.train_and_evaluate(config, tmp_path / "whole")
  assert [r["lr"] for r in whole.history] == pytest.approx([0.3, 0.3, 0.3, 0.15], rel=1e-7)
  assert [r["plateau_scale"] for r in whole.history] == [1.0, 1.0, 1.0, 0.5]

  order = input_pipeline.epoch_order

  def interrupted(seed, epoch, n):
    if epoch == 2:  # during the third epoch, after two were saved
      raise _Interrupt
    return order(seed, epoch, n)

  monkeypatch.setattr(input_pipeline, "epoch_order", interrupted)
  with pytest.raises(_Interrupt):
    train.train_and_evaluate(config, tmp_path / "resumed")
  monkeypatch.setattr(input_pipeline, "epoch_order", order)
  capsys.readouterr()
  resumed = train.train_and_evaluate(
      train.Config(**{**config.__dict__, "resume": True}), tmp_path / "resumed")
  assert "after epoch 2" in capsys.readouterr().out

  strip = lambda h: [{k: v for k, v in r.items() if k != "time"} for r in h]
  assert strip(resumed.history) == strip(whole.history)
  a, b = jax.tree.leaves(whole.state), jax.tree.leaves(resumed.state)
  assert len(a) == len(b) > 10
  for x, y in zip(a, b):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# --- command line ----------------------------------------------------------------


@pytest.mark.parametrize("argv, message", [
    (["--schedule", "nope"], "unknown schedule 'nope'"),
    (["--compare", "none,bogus"], "unknown schedule 'bogus'"),
    (["--compare", "none,none"], "each run needs its own name"),
    (["--compare", ","], "each run needs its own name, got none"),
    (["--epochs", "-3"], "epochs must be an integer >= 1, got -3"),
    (["--epochs", "x"], "invalid int value: 'x'"),
    (["--batch-size", "0"], "batch_size must be an integer >= 1"),
    (["--lr", "-0.1"], "learning_rate must be a finite number > 0"),
    (["--schedule", '{"type": "cosine_decay", "peak_value": 0.1'], "malformed schedule JSON"),
    (["--schedule", '{"type": "cosine_decay", "peak_value": -1, "decay_steps": 9}'],
     "peak_value must be >= 0.0, got -1"),
    (["--momentum", "-0.5"], "momentum must be a finite number >= 0, got -0.5"),
    (["--optimizer", "adamw", "--momentum", "0.9"], "momentum applies to optimizer 'sgd', got 0.9"),
    (["--weight-decay", "0.01"], "weight_decay applies to optimizer 'adamw', got 0.01"),
    (["--optimizer", "adamw", "--weight-decay", "-1"], "weight_decay must be a finite number >= 0"),
    (["--optimizer", "rmsprop"], "invalid choice: 'rmsprop'"),
    (["--schedule", "one-cycle-momentum", "--momentum", "0.9"],
     "schedule 'one-cycle-momentum' sets its own momentum"),
    (["--conv-impl", "cuda"], "invalid choice: 'cuda'"),
    (["--compare", "none,sqrt", "--jobs", "0"], "--jobs must be 'auto' or an integer >= 1, got 0"),
    (["--compare", "none,sqrt", "--jobs", "two"], "--jobs must be 'auto' or an integer >= 1, got 'two'"),
    (["--jobs", "2"], "--jobs applies to --compare only"),
    (["--compare", "none", "--jobs", "2", "--distributed"],
     "--jobs: the runs of a multi-process --compare go one at a time"),
    (["--schedule", '{"type": "nope"}'], "unknown schedule 'nope'"),
    (["--schedule", "@/nonexistent/s.json"], "cannot read schedule file"),
])
def test_bad_command_line_values_exit_with_one_line(argv, message, capsys, tmp_path):
  with pytest.raises(SystemExit) as e:
    main.main(argv + ["--workdir", str(tmp_path)])
  out, err = capsys.readouterr()
  assert e.value.code == 2
  assert out == ""
  assert err.count("\n") == 1 and ": error: " in err and message in err, err
  assert not (tmp_path / "metrics.json").exists()


def test_schedule_from_json_file(tmp_path):
  d = {"type": "exponential_decay", "init_value": 0.2, "decay_steps": 100, "decay_rate": 0.5}
  (tmp_path / "s.json").write_text(json.dumps(d))
  parsed = main.parse_schedule(main.Parser(), f"@{tmp_path / 's.json'}")
  schedule = schedules.make_plan(train.Config(schedule=parsed), 469).schedule
  np.testing.assert_allclose(schedule(300), 0.2 * 0.5**3, rtol=1e-6)


# --- devices ---------------------------------------------------------------------

# Small enough to be quick, and a rate at which a few hundred images do not
# train chaotically (at 0.3 the devices' different summation order, a rounding
# difference, grows to a different run within two epochs).
DEVICES_ARGS = dict(schedule="cosine", epochs=2, batch_size=64, learning_rate=0.1,
                    train_subset=1024, test_subset=512)


def _run_on_devices(devices, workdir):
  """The example's command line in a process with `devices` CPU devices."""
  c = train.Config(**DEVICES_ARGS)
  if devices == jax.device_count():  # this process will do
    train.train_and_evaluate(c, workdir)
    return json.loads((workdir / "metrics.json").read_text())
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
  cmd = [sys.executable, str(EXAMPLE / "main.py"), "--schedule", c.schedule,
         "--epochs", str(c.epochs), "--batch-size", str(c.batch_size), "--lr", str(c.learning_rate),
         "--train-subset", str(c.train_subset), "--test-subset", str(c.test_subset),
         "--workdir", str(workdir), "--no-progress"]
  p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
  assert p.returncode == 0, p.stderr[-3000:]
  assert f"on {devices} cpu device(s)" in p.stdout
  return json.loads((workdir / "metrics.json").read_text())


def test_two_devices_give_the_losses_of_one(tmp_path):
  one, two = _run_on_devices(1, tmp_path / "one"), _run_on_devices(2, tmp_path / "two")
  assert (len(one["devices"]), len(two["devices"])) == (1, 2)
  for key in ("train_loss", "test_loss", "train_acc", "test_acc"):
    np.testing.assert_allclose([r[key] for r in two["history"]],
                               [r[key] for r in one["history"]], rtol=1e-5, err_msg=key)
  # The cosine reference: 0.1 to 0.01 over 20 epochs, indexed by epoch.
  for run in (one, two):
    np.testing.assert_allclose(
        [r["lr"] for r in run["history"]],
        [0.01 + 0.09 * (1 + math.cos(math.pi * e / 20)) / 2 for e in (0, 1)], rtol=2e-6)
