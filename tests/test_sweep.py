"""The Fashion-MNIST sweep (K schedules trained together) and ``--find-lr``, on the
real data: each configuration of a sweep equals its own separate run, in every
mode, with the plateau transform and with momentum too; one compile per sweep;
the command line; the range test's outputs.
"""

import json
import math
import pathlib
import sys

import jax
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "fashion_mnist"
sys.path.insert(0, str(EXAMPLE))

import input_pipeline  # noqa: E402  pylint: disable=wrong-import-position
import lrjax  # noqa: E402  pylint: disable=wrong-import-position
import main  # noqa: E402  pylint: disable=wrong-import-position
import reporting  # noqa: E402  pylint: disable=wrong-import-position
import schedules  # noqa: E402  pylint: disable=wrong-import-position
import sweep  # noqa: E402  pylint: disable=wrong-import-position
import train  # noqa: E402  pylint: disable=wrong-import-position
from test_example import count_traces  # noqa: E402  pylint: disable=wrong-import-position

# A few hundred real images, batch 32: 8 steps an epoch.
TINY = dict(batch_size=32, seed=1, train_subset=256, test_subset=128)


def _config(k, state):
  """Configuration k's slice of a stacked state."""
  return jax.tree.map(lambda x: x[k], state)


def _assert_same_state(got, want, **tol):
  a, b = jax.tree.leaves(got), jax.tree.leaves(want)
  assert len(a) == len(b) > 10
  for x, y in zip(a, b):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), **tol)


def _strip(history):
  return [{k: v for k, v in r.items() if k != "time"} for r in history]


@pytest.fixture(scope="module")
def one_cycle_runs(tmp_path_factory):
  """Three one-cycle rates (SGD with momentum 0.5), each trained alone by train.py."""
  base = train.Config(schedule="one-cycle", epochs=2, momentum=0.5, **TINY)
  configs = sweep.lr_sweep(base, [0.05, 0.1, 0.2])
  with pytest.MonkeyPatch.context() as m:
    m.setattr(reporting, "plot", lambda *a: None)  # a second per plot, never looked at
    runs = [train.train_and_evaluate(c, tmp_path_factory.mktemp("alone")) for c in configs.values()]
  return configs, runs


@pytest.mark.parametrize("mode", ["threads", "vmap"])
def test_each_configuration_equals_its_separate_run(mode, one_cycle_runs, tmp_path, monkeypatch):
  configs, runs = one_cycle_runs
  traces = count_traces(monkeypatch)
  result = sweep.sweep(configs, tmp_path, mode=mode)
  # One compile for all K: train.py's own chunk (threads), or one program over
  # the K states whose steps are train.py's (vmap).
  assert traces == {"train_step": 1, "eval_step": 1}

  assert list(result.histories) == ["one-cycle lr=0.05", "one-cycle lr=0.1", "one-cycle lr=0.2"]
  for k, (history, alone) in enumerate(zip(result.histories.values(), runs)):
    if mode == "threads":  # the separate run's own program: bit for bit
      _assert_same_state(_config(k, result.state), alone.state, rtol=0, atol=0)
    else:
      _assert_same_state(_config(k, result.state), alone.state, rtol=1e-5, atol=1e-5)
    for got, want in zip(_strip(history), _strip(alone.history), strict=True):
      assert got.keys() == want.keys()
      np.testing.assert_allclose([got[c] for c in reporting.COLUMNS if c != "time"],
                                 [want[c] for c in reporting.COLUMNS if c != "time"],
                                 rtol=0 if mode == "threads" else 1e-5)
  # The configurations did train differently (so the comparison means something).
  w = [np.asarray(r.state[0]["fc3"]["kernel"][...]) for r in runs]
  assert np.abs(w[0] - w[2]).max() > 1e-3

  table = (tmp_path / "sweep.md").read_text()
  assert table.count("| one-cycle lr=") == 3 and f"by `{mode}`" in table
  saved = json.loads((tmp_path / "sweep.json").read_text())
  assert saved["mode"] == mode and saved["k"] == 3
  assert saved["histories"] == json.loads(json.dumps(result.histories))
  assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("mode", ["threads", "vmap"])
def test_plateau_sweep_keeps_counters_per_configuration(mode, monkeypatch, tmp_path):
  # An improvement of 1.0 in accuracy never happens: every observation after
  # the first is bad. Patience 0 (lr 0.05) reduces after epochs 2 and 3,
  # patience 1 (lr 0.2) after epoch 3 only; the rates of epoch 3 show it.
  monkeypatch.setitem(schedules.SCHEDULES, "plateau", lambda lr, epochs, spe: schedules.Plan(
      lrjax.constant(lr),
      dict(factor=0.5, patience=0 if lr < 0.1 else 1, mode="max", threshold=1.0,
           threshold_mode="abs")))
  tiny = TINY | dict(train_subset=128)  # 4 steps an epoch
  configs = sweep.lr_sweep(train.Config(schedule="plateau", epochs=3, **tiny), [0.05, 0.2])
  traces = count_traces(monkeypatch, ("train_step", "eval_step", "observe_step"))
  result = sweep.sweep(configs, tmp_path / "sweep", mode=mode)
  assert traces == {"train_step": 1, "eval_step": 1, "observe_step": 1}
  lrs = [[r["lr"] for r in h] for h in result.histories.values()]
  np.testing.assert_allclose(lrs, [[0.05, 0.05, 0.025], [0.2, 0.2, 0.2]], rtol=1e-7)
  # The one reduced twice, alone: its plateau statistics (scale 0.25) included.
  alone = train.train_and_evaluate(configs["plateau lr=0.05"], tmp_path / "alone")
  _assert_same_state(_config(0, result.state), alone.state, rtol=1e-5, atol=1e-5)


def test_sweep_of_lrjax_dicts_from_the_command_line(tmp_path, capsys):
  dicts = [{"type": "constant", "value": v} for v in (0.02, 0.1)]
  main.main(["--sweep", json.dumps(dicts), "--epochs", "1", "--batch-size", "32",
             "--train-subset", "128", "--test-subset", "64", "--workdir", str(tmp_path)])
  out = capsys.readouterr().out
  assert "Sweep of 2 configurations by threads on" in out  # auto, on the CPU
  saved = json.loads((tmp_path / "sweep.json").read_text())
  assert list(saved["histories"]) == ["value=0.02", "value=0.1"]
  for v, history in zip((0.02, 0.1), saved["histories"].values()):
    assert history[0]["lr"] == pytest.approx(v, rel=1e-7)
    assert history[0]["lr_last"] == pytest.approx(v, rel=1e-7)
  assert [r["configuration"] for r in saved["rows"]] == ["value=0.02", "value=0.1"]


@pytest.mark.parametrize("mode", ["threads", "vmap"])
def test_a_sweep_of_two_kinds_through_switch(mode, tmp_path, capsys):
  # A constant and a cosine are two structures; switches over both are one.
  kinds = [{"type": "constant", "value": 0.05},
           {"type": "cosine_decay", "peak_value": 0.2, "decay_steps": 8}]
  dicts = [{"type": "switch", "schedules": kinds, "index": i} for i in (0, 1)]
  main.main(["--sweep", json.dumps(dicts), "--sweep-mode", mode, "--epochs", "2",
             "--batch-size", "32", "--train-subset", "128", "--test-subset", "64",
             "--workdir", str(tmp_path)])
  saved = json.loads((tmp_path / "sweep.json").read_text())
  assert list(saved["histories"]) == ["index=0", "index=1"]
  constant, cosine = saved["histories"].values()
  assert [r["lr"] for r in constant] == pytest.approx([0.05, 0.05], rel=1e-7)
  # 4 steps an epoch: the cosine's rate at steps 0 and 4, and at 3 and 7.
  cos = lambda t: 0.1 * (1 + math.cos(math.pi * t / 8))
  assert [r["lr"] for r in cosine] == pytest.approx([cos(0), cos(4)], rel=1e-6)
  assert [r["lr_last"] for r in cosine] == pytest.approx([cos(3), cos(7)], rel=1e-6)
  capsys.readouterr()


def test_labels_name_the_numbers_that_differ():
  cos = lambda lr, n: {"type": "per_epoch", "steps_per_epoch": 469, "schedule": {
      "type": "cosine_decay", "peak_value": lr, "decay_steps": n}}
  got = sweep.dict_sweep(train.Config(), [cos(0.1, 20), cos(0.3, 20), cos(0.3, 30)])
  assert list(got) == ["schedule.peak_value=0.1, schedule.decay_steps=20",
                       "schedule.peak_value=0.3, schedule.decay_steps=20",
                       "schedule.peak_value=0.3, schedule.decay_steps=30"]
  assert list(sweep.dict_sweep(train.Config(), [cos(0.1, 20)] * 2)) == ["#0", "#1"]


@pytest.mark.parametrize("argv, message", [
    (["--sweep", json.dumps([{"type": "constant", "value": 0.1},
                             {"type": "cosine_decay", "peak_value": 0.1, "decay_steps": 100}])],
     "sweep: 'peak_value=0.1, decay_steps=100' is a CosineDecay that differs in structure "
     "from 'value=0.1', a Constant;"),
    (["--sweep", '{"type": "constant", "value": 0.1}'], "expected a non-empty JSON list"),
    (["--sweep", "[{"], "malformed sweep JSON"),
    (["--sweep", "@/nonexistent/sweep.json"], "cannot read sweep file"),
    (["--sweep", '[{"type": "constant", "value": -1}]'], "value must be >= 0"),
    (["--sweep-lr", "0.1,x"], "--sweep-lr: expected numbers separated by commas"),
    (["--sweep-lr", "0.1,0.1"], "the rates must differ"),
    (["--sweep-lr", "0.1,-0.2"], "learning_rate must be a finite number > 0, got -0.2"),
    (["--schedule", "sqrt", "--sweep-lr", "0.1,0.2"], "'sqrt lr=0.2' trains exactly as 'sqrt lr=0.1'"),
    (["--schedule", '{"type": "constant", "value": 0.1}', "--sweep-lr", "0.1,0.2"],
     "--sweep-lr scales a named --schedule"),
    (["--sweep-lr", "0.1,0.2", "--resume"], "not to --sweep, --sweep-lr, --find-lr or --branch"),
    (["--sweep-lr", "0.1,0.2", "--compare", "none"], "not allowed with argument"),
    (["--sweep-lr", "0.1,0.2", "--sweep-mode", "fast"], "invalid choice: 'fast'"),
    (["--find-lr", "--find-lr-steps", "1"], "--find-lr-steps must be an integer >= 2, got 1"),
])
def test_bad_sweep_values_exit_with_one_line(argv, message, capsys, tmp_path):
  with pytest.raises(SystemExit) as e:
    main.main(argv + ["--workdir", str(tmp_path)])
  out, err = capsys.readouterr()
  assert e.value.code == 2
  assert out == ""
  assert err.count("\n") == 1 and ": error: " in err and message in err, err
  assert not list(tmp_path.iterdir())


def test_find_lr_writes_its_files_and_suggests_rates_in_range(tmp_path, capsys):
  main.main(["--find-lr", "--find-lr-steps", "40", "--batch-size", "32", "--seed", "2",
             "--train-subset", "512", "--workdir", str(tmp_path)])
  out = capsys.readouterr().out
  saved = json.loads((tmp_path / "lr_find.json").read_text())
  rates = np.array(saved["rates"])
  assert len(rates) == 40 and saved["num_valid"] <= 40
  np.testing.assert_allclose(rates[[0, -1]], [1e-5, 10.0], rtol=1e-6)
  np.testing.assert_allclose(np.diff(np.log(rates)), math.log(1e6) / 39, rtol=1e-4)
  # Step 0's loss is the fresh LeNet's on the first batch of epoch 0.
  ds = input_pipeline.load()
  x, y = ds["train_images"][:512], ds["train_labels"][:512]
  idx, weight = input_pipeline.batch_indices(input_pipeline.epoch_order(2, 0, 512), 32)
  batch = {"image": x[idx[0]], "label": y[idx[0]], "weight": weight[0]}
  loss, _ = train.loss_and_metrics(train.create_model(train.Config(seed=2)), batch)
  assert saved["losses"][0] == pytest.approx(float(loss), rel=1e-5)
  for name, value in saved["suggestions"].items():
    assert value is not None and 1e-6 <= value <= 10.0, name
    assert f"{name} {value:.3g}" in out
  valid = rates[:saved["num_valid"]]
  assert min(abs(valid - saved["suggestions"]["steepest"])) < 1e-9
  assert min(abs(valid - saved["suggestions"]["valley"])) < 1e-9
  assert (tmp_path / "lr_find.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
