"""The example's cooldown branches (``--branch E1,E2 --cooldown-epochs N``): each
branch trains as a separate run of the same cooldown from scratch (bit for bit
in ``threads`` mode, to 1e-5 under ``vmap``), its rates are the 1-sqrt
cooldown's from the rate in effect at its epoch, its history holds the shared
epochs first; and bad flags end with one line, exit status 2.
"""

import json
import math
import pathlib
import sys

import numpy as np
import pytest

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "fashion_mnist"
sys.path.insert(0, str(EXAMPLE))

import branch  # noqa: E402  pylint: disable=wrong-import-position
import lrjax  # noqa: E402  pylint: disable=wrong-import-position
import main  # noqa: E402  pylint: disable=wrong-import-position
import reporting  # noqa: E402  pylint: disable=wrong-import-position
import train  # noqa: E402  pylint: disable=wrong-import-position

# 8 steps an epoch; a constant 0.1 until each branch point.
TINY = dict(schedule="none", learning_rate=0.1, batch_size=64, train_subset=512, test_subset=256)
POINTS, N, EPOCHS = (1, 3), 2, 6
SPE = 8


def _strip(history):
  return [{k: v for k, v in r.items() if k != "time"} for r in history]


def _history(workdir):
  return json.loads((pathlib.Path(workdir) / "metrics.json").read_text())["history"]


@pytest.fixture(scope="module")
def separate(tmp_path_factory):
  """Each branch's cooldown trained alone from scratch: E -> its history."""
  out = {}
  with pytest.MonkeyPatch.context() as m:
    m.setattr(reporting, "plot", lambda *a: None)
    for e in POINTS:
      cooled = lrjax.cooldown(lrjax.constant(0.1), start=e * SPE, decay_steps=N * SPE)
      config = train.Config(**(TINY | {"schedule": cooled.to_dict()}), epochs=e + N)
      out[e] = train.train_and_evaluate(config, tmp_path_factory.mktemp(f"alone{e}")).history
  return out


@pytest.mark.parametrize("mode", ["threads", "vmap"])
def test_each_branch_equals_its_cooldown_trained_alone(mode, separate, tmp_path, capsys,
                                                       monkeypatch):
  monkeypatch.setattr(reporting, "plot", lambda *a: None)
  rows = branch.branch(train.Config(**TINY, epochs=EPOCHS), POINTS, N, tmp_path, mode=mode)
  out = capsys.readouterr().out
  assert [r["branch"] for r in rows] == ["branch-1", "branch-3"]
  assert f"2 branches by `{mode}`: 7 epochs trained (the run to epoch 3, then 2 x 2) against 8" in out
  base = _history(tmp_path / "base")
  assert [r["epoch"] for r in base] == [1, 2, 3]
  for e in POINTS:
    got = _history(tmp_path / f"branch-{e}")
    assert [r["epoch"] for r in got] == list(range(1, e + N + 1))
    assert _strip(got[:e]) == _strip(base[:e])  # the shared epochs first
    if mode == "threads":  # the same compiled program on the same batches
      assert _strip(got) == _strip(separate[e])
    else:
      for a, b in zip(got, separate[e], strict=True):
        np.testing.assert_allclose([a[k] for k in ("train_loss", "test_loss", "lr", "lr_last")],
                                   [b[k] for k in ("train_loss", "test_loss", "lr", "lr_last")],
                                   rtol=1e-5)
    # 1-sqrt from 0.1 over 16 steps: the epochs' first and last steps.
    cool = lambda t: 0.1 * (1 - math.sqrt(t / (N * SPE)))
    np.testing.assert_allclose([(r["lr"], r["lr_last"]) for r in got[e:]],
                               [(cool(0), cool(7)), (cool(8), cool(15))], rtol=1e-6)
    assert sorted(p.name for p in (tmp_path / f"branch-{e}" / "checkpoints").iterdir()) == [
        str(e + 1), str(e + 2)]
  assert "| branch-3 |" in (tmp_path / "branches.md").read_text()


@pytest.mark.parametrize("argv, message", [
    (["--branch", "2,4"], "--branch and --cooldown-epochs go together"),
    (["--cooldown-epochs", "2"], "--branch and --cooldown-epochs go together"),
    (["--branch", "4,2", "--cooldown-epochs", "2"], "--branch: expected increasing epochs >= 1, got 4,2"),
    (["--branch", "2,2", "--cooldown-epochs", "2"], "--branch: expected increasing epochs >= 1, got 2,2"),
    (["--branch", ",", "--cooldown-epochs", "2"], "--branch: expected epochs separated by commas, got none"),
    (["--branch", "2,x", "--cooldown-epochs", "2"], "--branch: expected numbers separated by commas"),
    (["--branch", "40", "--cooldown-epochs", "2"], "--branch: epoch 40 is past --epochs 30"),
    (["--branch", "4", "--cooldown-epochs", "0"], "--cooldown-epochs must be an integer >= 1, got 0"),
    (["--branch", "4", "--cooldown-epochs", "2", "--cooldown-shape", "exp"], "invalid choice: 'exp'"),
    (["--branch", "4", "--cooldown-epochs", "2", "--compare", "none"], "not allowed with argument"),
    (["--branch", "4", "--cooldown-epochs", "2", "--resume"], "not to --sweep, --sweep-lr, --find-lr or --branch"),
])
def test_bad_branch_flags_exit_with_one_line(argv, message, capsys, tmp_path):
  with pytest.raises(SystemExit) as e:
    main.main(argv + ["--workdir", str(tmp_path)])
  out, err = capsys.readouterr()
  assert e.value.code == 2 and out == ""
  assert err.count("\n") == 1 and ": error: " in err and message in err, err
  assert not list(tmp_path.iterdir())
