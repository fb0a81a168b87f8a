"""How the Fashion-MNIST example fails: a diverged run, an unwritable work
directory, damaged checkpoints, a full disk, SIGTERM. Each says so in one
line, exits non-zero, leaves its last good checkpoint newest, and (where it
applies) ``--resume`` reaches the uninterrupted run's history.

The runs are a few hundred real images for 3 epochs under ``plateau`` (as
in tests/test_distributed.py); one uninterrupted run, made in this process,
is the reference of every resume.
"""

import contextlib
import json
import os
import pathlib
import re
import resource
import shutil
import signal
import subprocess
import sys
import time

import jax.numpy as jnp
import numpy as np
import pytest

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "fashion_mnist"
sys.path.insert(0, str(EXAMPLE))

import input_pipeline  # noqa: E402  pylint: disable=wrong-import-position
import main  # noqa: E402  pylint: disable=wrong-import-position
import train  # noqa: E402  pylint: disable=wrong-import-position

EPOCHS = 3
SMALL = dict(schedule="plateau", batch_size=64, train_subset=512, test_subset=256)
FLAGS = ["--schedule", "plateau", "--batch-size", "64", "--train-subset", "512",
         "--test-subset", "256", "--no-progress"]
HINT = "Try a lower --lr (--find-lr suggests one)"


def _strip(history):
  return [{k: v for k, v in r.items() if k != "time"} for r in history]


def _checkpoints(workdir: pathlib.Path) -> list[str]:
  return sorted(p.name for p in (workdir / "checkpoints").iterdir())


def _history(workdir: pathlib.Path) -> list[dict]:
  return json.loads((workdir / "metrics.json").read_text())["history"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """An uninterrupted run of `EPOCHS` epochs: its work directory."""
  workdir = tmp_path_factory.mktemp("reference")
  train.train_and_evaluate(train.Config(epochs=EPOCHS, **SMALL), workdir)
  return workdir


def _command(argv, *, preexec_fn=None, timeout=300):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, str(EXAMPLE / "main.py"), *argv], env=env, text=True,
                        capture_output=True, timeout=timeout, check=False, preexec_fn=preexec_fn)


def _one_line(stderr: str) -> str:
  lines = [l for l in stderr.splitlines() if l.strip()]
  assert len(lines) == 1 and "Traceback" not in stderr, stderr[-3000:]
  return lines[0]


# --- divergence ------------------------------------------------------------------------


def test_a_diverged_run_stops_with_one_line_and_keeps_its_last_good_checkpoint(tmp_path):
  # 8 steps an epoch: 0.1 for two epochs, then 1e4, at which LeNet's loss is NaN at once.
  schedule = {"type": "piecewise_constant", "boundaries": [16], "values": [0.1, 1e4]}
  p = _command([*FLAGS, "--schedule", json.dumps(schedule), "--epochs", "5",
                "--workdir", str(tmp_path)])
  assert p.returncode == 1
  assert re.fullmatch(r"main\.py: error: diverged at epoch 3: training loss (nan|inf|-inf) at "
                      r"rate 1e\+04; nothing written after epoch 2\. " + re.escape(HINT),
                      _one_line(p.stderr)), p.stderr
  assert _checkpoints(tmp_path) == ["1", "2"]
  assert [r["epoch"] for r in _history(tmp_path)] == [1, 2]
  assert "Epoch 3," not in p.stdout


def test_an_epoch_stops_at_the_first_chunk_whose_loss_is_not_finite():
  """`train.train_epoch` stops dispatching once a finished chunk's losses are
  all NaN: chunk 2 of 6 is NaN, so chunk 3 (in flight meanwhile) is the last."""
  calls = []

  def chunk(state, idx, weight):
    calls.append(idx.shape)
    loss = jnp.full((1, idx.shape[1]), jnp.nan if len(calls) >= 2 else 1.0, jnp.float32)
    ones = jnp.ones_like(loss)
    return state, {"loss_sum": loss, "correct": ones, "count": ones, "lr": ones,
                   "plateau_scale": ones}

  steps = 6 * 32  # chunk_steps: 32
  idx = np.zeros((1, steps, 4), np.int32)
  _, metrics = train.train_epoch(chunk, None, idx, np.ones_like(idx, np.float32))
  assert calls == [(1, 32, 4)] * 3
  assert metrics["loss_sum"].shape == (96, 1)
  assert np.isfinite(metrics["loss_sum"][:32]).all() and np.isnan(metrics["loss_sum"][32:]).all()


def test_compare_marks_the_diverged_run_and_the_others_finish(tmp_path, capsys, monkeypatch):
  monkeypatch.setattr(train.reporting, "plot", lambda *a: None)
  # sqrt's rate is 0.1 / sqrt(epoch + 1) whatever --lr; none's is --lr: 1e4 diverges.
  with pytest.raises(SystemExit) as e:
    main.main([*FLAGS, "--compare", "sqrt,none", "--lr", "1e4", "--epochs", str(EPOCHS),
               "--workdir", str(tmp_path)])
  assert e.value.code.endswith(": error: 1 of 2 runs diverged (none at epoch 1); the others "
                               f"ran to the end. {HINT}")
  out = capsys.readouterr().out
  assert re.search(r"^\[none\] diverged at epoch 1: training loss \S+ at rate 1e\+04", out, re.M)
  assert "| none | diverged at epoch 1 |" in (tmp_path / "comparison.md").read_text()
  assert [r["epoch"] for r in _history(tmp_path / "sqrt")] == [1, 2, 3]
  np.testing.assert_allclose([r["lr"] for r in _history(tmp_path / "sqrt")],
                             [0.1 / np.sqrt(e) for e in (1, 2, 3)], rtol=1e-6)
  assert _checkpoints(tmp_path / "none") == []


# --- the work directory ------------------------------------------------------------------


@pytest.mark.parametrize("where", ["proc", "file"])
def test_an_unwritable_workdir_is_one_line_before_the_data_is_loaded(where, tmp_path, capsys,
                                                                     monkeypatch):
  workdir = "/proc/nope" if where == "proc" else str(tmp_path / "file")
  (tmp_path / "file").write_text("not a directory")
  monkeypatch.setattr(input_pipeline, "load", lambda *a, **k: pytest.fail("data loaded"))
  with pytest.raises(SystemExit) as e:
    main.main([*FLAGS, "--epochs", "1", "--workdir", workdir])
  assert e.value.code == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and f": error: cannot write to {workdir}: " in err, err


# --- damaged checkpoints ----------------------------------------------------------------


def _damage(checkpoint: pathlib.Path) -> None:
  """Overwrites a checkpoint's file."""
  assert checkpoint.is_file()
  checkpoint.write_bytes(b"\xff\xfe damaged \x00" * 7)


def test_resume_skips_a_damaged_checkpoint_and_reaches_the_same_history(reference, tmp_path,
                                                                       capsys):
  workdir = tmp_path / "run"
  shutil.copytree(reference, workdir)
  assert _checkpoints(workdir) == ["2", "3"]
  _damage(workdir / "checkpoints" / "3")
  capsys.readouterr()
  result = train.train_and_evaluate(train.Config(epochs=EPOCHS, resume=True, **SMALL), workdir)
  out = capsys.readouterr().out
  assert re.search(r"^checkpoint 3 cannot be restored \(.+\), kept as 3\.damaged; resuming from "
                   r"checkpoint 2$", out, re.M), out
  assert f"Resuming {workdir} after epoch 2" in out
  assert _strip(result.history) == _strip(_history(reference))
  assert _checkpoints(workdir) == ["2", "3", "3.damaged"]


def test_resume_with_no_checkpoint_that_restores_is_one_line(reference, tmp_path, capsys):
  workdir = tmp_path / "run"
  shutil.copytree(reference, workdir)
  for step in ("2", "3"):
    _damage(workdir / "checkpoints" / step)
  with pytest.raises(SystemExit) as e:
    main.main([*FLAGS, "--epochs", str(EPOCHS), "--resume", "--workdir", str(workdir)])
  assert re.fullmatch(rf"\S+: error: --resume: no checkpoint in {workdir / 'checkpoints'} "
                      r"can be restored \(3: .+; 2: .+\); they are kept as <epoch>\.damaged",
                      e.value.code), e.value.code
  assert _checkpoints(workdir) == ["2.damaged", "3.damaged"]


def test_resume_with_another_setting_is_refused_in_one_line(reference, tmp_path, capsys):
  workdir = tmp_path / "run"
  shutil.copytree(reference, workdir)
  with pytest.raises(SystemExit) as e:
    main.main([*FLAGS, "--epochs", "4", "--resume", "--momentum", "0.5", "--seed", "2",
               "--workdir", str(workdir)])
  assert e.value.code.endswith(f": error: --resume: {workdir} holds a run with other settings: "
                               "momentum 0.0 (now 0.5), seed 0 (now 2); use the same settings or "
                               "another --workdir")
  assert _strip(_history(workdir)) == _strip(_history(reference))  # untouched


# --- a full disk ---------------------------------------------------------------------------


@contextlib.contextmanager
def _small_filesystem(path: pathlib.Path, size: str):
  """A tmpfs of `size` mounted at `path`, or None where mounting is not allowed."""
  path.mkdir()
  try:
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True, check=False).returncode == 0
  except FileNotFoundError:
    mounted = False
  try:
    yield path if mounted else None
  finally:
    if mounted:
      subprocess.run(["umount", str(path)], check=True)


def test_a_full_disk_is_one_line_and_the_last_checkpoint_resumes(reference, tmp_path):
  with _small_filesystem(tmp_path / "small", "450k") as small:
    if small is not None:  # room for one checkpoint (about 250 KB), not two
      p = _command([*FLAGS, "--epochs", str(EPOCHS), "--workdir", str(small / "run")])
      kept = tmp_path / "kept"
      shutil.copytree(small / "run", kept, ignore=shutil.ignore_patterns(".*.tmp*"))
    else:  # a file-size limit in the child: every write past 64 KB fails (EFBIG)
      limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
      p = _command([*FLAGS, "--epochs", str(EPOCHS), "--workdir", str(tmp_path / "run")],
                   preexec_fn=limit)
  line = _one_line(p.stderr)
  assert p.returncode == 1
  assert re.fullmatch(r"main\.py: error: cannot write (checkpoint \d to )?\S+: "
                      r"(No space left on device|File too large)", line), line
  if small is None:
    return
  done = sorted(int(s) for s in _checkpoints(kept) if s.isdigit())
  assert done and done[-1] < EPOCHS
  assert len(_history(kept)) >= done[-1]  # written whole (a temporary file, then a rename)
  p = _command([*FLAGS, "--epochs", str(EPOCHS), "--resume", "--workdir", str(kept)])
  assert p.returncode == 0, p.stderr[-3000:]
  assert f"Resuming {kept} after epoch {done[-1]}" in p.stdout
  assert _strip(_history(kept)) == _strip(_history(reference))


# --- SIGTERM -----------------------------------------------------------------------------


def test_sigterm_stops_with_one_line_and_resume_gives_the_uninterrupted_history(tmp_path):
  workdir = tmp_path / "run"
  cmd = [sys.executable, str(EXAMPLE / "main.py"), *FLAGS, "--epochs", "1000",
         "--workdir", str(workdir)]
  p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env=dict(os.environ, JAX_PLATFORMS="cpu"))
  try:
    for line in p.stdout:  # wait until it trains
      if line.startswith("Epoch 2,"):
        break
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
  finally:
    p.kill()
  assert time.monotonic() - t0 < 10
  assert p.returncode == 143, err[-3000:]
  assert _one_line(err) == ("main.py: stopped by SIGTERM; run again with --resume to continue "
                            "from the last checkpoint")
  saved = len(_history(workdir))
  assert 2 <= saved < 1000
  assert max(int(s) for s in _checkpoints(workdir) if s.isdigit()) == saved
  epochs = saved + 1
  resumed = train.train_and_evaluate(train.Config(epochs=epochs, resume=True, **SMALL), workdir)
  whole = train.train_and_evaluate(train.Config(epochs=epochs, **SMALL), tmp_path / "whole")
  assert _strip(resumed.history) == _strip(whole.history)
