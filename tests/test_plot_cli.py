"""`lrjax.plot`, `lrjax.plot_range_test`, the `lrjax` command line and the docs
gallery script."""

from __future__ import annotations

import functools
import importlib.util
import io
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import lrjax
from lrjax import _registry
from lrjax import _plot
from lrjax._cli import ExpressionError, main, parse_schedule

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402
import matplotlib.image  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
TAB_BLUE = np.array([31, 119, 180]) / 255  # matplotlib's first line colour


def step_lr(t, init_value, step_size, gamma):
  """torch StepLR, float64: init_value * gamma ** (t // step_size)."""
  t = np.asarray(t, dtype=np.int64)
  return init_value * gamma ** (t // step_size).astype(np.float64)


def linear_warmup(t, steps, target):
  """A linear ramp from 0 to `target` over `steps`, then `target`."""
  return target * np.minimum(np.asarray(t, dtype=np.float64) / steps, 1.0)


def _ax():
  return Figure().add_subplot()


# --- lrjax.plot ----------------------------------------------------------------


def test_plot_int_steps_draws_the_schedule():
  s = lrjax.step_decay(0.1, step_size=30, gamma=0.5)
  ax = lrjax.plot(s, 100, ax=_ax())
  (line,) = ax.lines
  x, y = line.get_data()
  np.testing.assert_array_equal(x, np.arange(100))
  np.testing.assert_allclose(y, step_lr(np.arange(100), 0.1, 30, 0.5), rtol=1e-6)
  assert ax.get_xlabel() == "step"
  assert ax.get_ylabel() == "learning rate"
  assert ax.get_yscale() == "linear"


def test_plot_array_steps():
  steps = np.array([0, 29, 30, 61, 95])
  ax = lrjax.plot(lrjax.step_decay(0.2, step_size=30, gamma=0.1), steps, ax=_ax())
  x, y = ax.lines[0].get_data()
  np.testing.assert_array_equal(x, steps)
  np.testing.assert_allclose(y, step_lr(steps, 0.2, 30, 0.1), rtol=1e-6)


def test_plot_several_schedules_with_labels():
  a = lrjax.step_decay(0.1, step_size=10, gamma=0.5)
  b = lrjax.warmup(lrjax.constant(0.3), steps=8)
  ax = lrjax.plot([a, b], 40, ax=_ax(), labels=["step", "warm"])
  assert [l.get_label() for l in ax.lines] == ["step", "warm"]
  assert [t.get_text() for t in ax.get_legend().get_texts()] == ["step", "warm"]
  t = np.arange(40)
  np.testing.assert_allclose(ax.lines[0].get_ydata(), step_lr(t, 0.1, 10, 0.5), rtol=1e-6)
  np.testing.assert_allclose(ax.lines[1].get_ydata(), linear_warmup(t, 8, 0.3),
                             rtol=1e-6, atol=1e-7)


def test_plot_default_labels_are_the_call_without_defaults():
  a = lrjax.step_decay(0.1, step_size=10, gamma=0.5)
  b = lrjax.warmup(lrjax.constant(0.3), steps=8) * 0.5
  c = lrjax.sequence([lrjax.constant(0.1), lrjax.constant(0.01)], boundaries=[5])
  ax = lrjax.plot([a, b, c], 10, ax=_ax())
  assert [l.get_label() for l in ax.lines] == [
      "step_decay(0.1, step_size=10, gamma=0.5)",
      "product(warmup(constant(0.3), steps=8), constant(0.5))",
      "sequence([constant(0.1), constant(0.01)], boundaries=[5])",
  ]


def test_default_label_parses_back_to_the_same_schedule():
  s = lrjax.warmup(lrjax.step_decay(0.1, step_size=10, gamma=0.5), steps=3,
                   init_value=0.01, shape="cosine") * 0.5
  label = _plot.default_label(s, width=1000)
  assert label == repr(s)
  assert "shape='cosine'" in label and "init_value=0.01" in label
  assert parse_schedule(label).to_dict() == s.to_dict()


def test_plot_log_scale_leaves_zeros_out():
  s = lrjax.warmup(lrjax.constant(0.3), steps=4)  # 0 at step 0
  ax = lrjax.plot(s, 8, ax=_ax(), log=True)
  assert ax.get_yscale() == "log"
  y = ax.lines[0].get_ydata()
  assert np.isnan(y[0])
  np.testing.assert_allclose(y[1:], linear_warmup(np.arange(1, 8), 4, 0.3), rtol=1e-6)
  ax.figure.savefig(io.BytesIO(), format="png")  # draws without a warning


def test_plot_reuses_the_axes():
  ax = _ax()
  out1 = lrjax.plot(lrjax.constant(0.1), 5, ax=ax)
  out2 = lrjax.plot(lrjax.constant(0.2), 5, ax=ax)
  assert out1 is ax and out2 is ax
  np.testing.assert_allclose([l.get_ydata()[0] for l in ax.lines], [0.1, 0.2], rtol=1e-6)


def test_plot_without_ax_makes_a_pyplot_figure():
  ax = lrjax.plot(lrjax.constant(0.1), 3)
  try:
    assert ax.figure.number in plt.get_fignums()
    assert len(ax.lines) == 1
  finally:
    plt.close(ax.figure)


def test_plot_compares_against_an_optax_schedule():
  optax = pytest.importorskip("optax")
  ref = optax.linear_schedule(0.1, 0.0, transition_steps=50)
  ax = lrjax.plot([lrjax.constant(0.05), ref], 60, ax=_ax(), labels=["lrjax", "optax"])
  t = np.arange(60)
  np.testing.assert_allclose(ax.lines[1].get_ydata(), 0.1 * np.maximum(1 - t / 50, 0),
                             rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(
    "schedules, steps, labels, match",
    [
        ([], 10, None, "schedules must be non-empty"),
        ("constant(0.1)", 10, None, "schedules must be a schedule"),
        ([lrjax.constant(0.1), 3.0], 10, None, r"schedules\[1\] must be"),
        (lrjax.constant(0.1), 0, None, "steps must be >= 1"),
        (lrjax.constant(0.1), [[1, 2]], None, "steps must be an integer > 0 or"),
        (lrjax.constant(0.1), [], None, "steps must be an integer > 0 or"),
        (lrjax.constant(0.1), 10, ["a", "b"], "labels must be a list of 1"),
    ],
)
def test_plot_rejects_bad_arguments(schedules, steps, labels, match):
  with pytest.raises(ValueError, match=match):
    lrjax.plot(schedules, steps, ax=_ax(), labels=labels)


def test_plot_without_matplotlib_names_the_extra(monkeypatch):
  monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
  monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
  with pytest.raises(ImportError, match=r"pip install 'lrjax\[plot\]'"):
    lrjax.plot(lrjax.constant(0.1), 10)


# --- lrjax.plot_range_test -----------------------------------------------------

RT_N, RT_VALID = 30, 24


def _range_result(**changes):
  """A RangeTestResult written by hand: 24 finite steps of 30, then NaN."""
  i = np.arange(RT_N, dtype=np.float64)
  rates = np.float32(1e-4 * 10.0 ** (i / 7.25))  # 1e-4 .. 1e0
  losses = np.where(i < RT_VALID, 2.5 - 0.1 * i, np.nan).astype(np.float32)
  losses[20] = 0.1  # the lowest loss of all
  smoothed = np.where(i < RT_VALID, 2.4 - 0.09 * i, np.nan).astype(np.float32)
  smoothed[1] = 2.6  # the highest of the first tenth (steps 0 and 1 of 24)
  fields = dict(rates=rates, losses=losses, smoothed=smoothed, num_valid=RT_VALID,
                steepest=1e-3, valley=float("nan"), minimum_div_10=0.02)
  return lrjax.RangeTestResult(**{**fields, **changes})


def test_plot_range_test_draws_the_losses_and_the_finite_suggestions():
  r = _range_result()
  ax = lrjax.plot_range_test(r, ax=_ax(), title="LeNet")
  assert ax.get_xscale() == "log" and ax.get_title() == "LeNet"
  assert [l.get_label() for l in ax.lines] == [
      "loss", "smoothed loss", "steepest: 0.001", "minimum / 10: 0.02"]  # no valley: NaN
  for line, y in zip(ax.lines[:2], [r.losses, r.smoothed]):
    x_drawn, y_drawn = line.get_data()
    np.testing.assert_array_equal(x_drawn, r.rates)
    np.testing.assert_array_equal(y_drawn, y)  # NaN tail included, NaN == NaN here
    assert np.isnan(y_drawn[RT_VALID:]).all() and np.isfinite(y_drawn[:RT_VALID]).all()
  for line, value in zip(ax.lines[2:], [1e-3, 0.02]):
    assert line.get_linestyle() == "--"
    np.testing.assert_array_equal(line.get_xdata(), [value, value])
    np.testing.assert_array_equal(line.get_ydata(), [0, 1])  # axes coordinates: full height
  # y from the lowest loss to a little above the start, from the formula:
  finite = np.isfinite(r.losses) & np.isfinite(r.smoothed)
  lo = min(np.min(r.losses[finite]), np.min(r.smoothed[finite]))
  hi = np.max(r.smoothed[finite][:max(1, int(finite.sum()) // 10)])
  pad = 0.05 * max(hi - lo, 1e-3)
  np.testing.assert_allclose(ax.get_ylim(), [lo - pad, hi + 4 * pad], rtol=1e-6)
  # ... and by hand: lo 0.1 (losses[20]), hi 2.6 (smoothed[1]), pad 0.05 * 2.5.
  np.testing.assert_allclose(ax.get_ylim(), [0.1 - 0.125, 2.6 + 0.5], rtol=1e-6)
  assert [t.get_text() for t in ax.get_legend().get_texts()] == [
      l.get_label() for l in ax.lines]


def test_plot_range_test_flat_loss_gets_the_minimum_pad():
  i = np.arange(RT_N)
  flat = np.where(i < RT_VALID, 1.0, np.nan)
  ax = lrjax.plot_range_test(_range_result(losses=flat, smoothed=flat), ax=_ax())
  np.testing.assert_allclose(ax.get_ylim(), [1.0 - 5e-5, 1.0 + 2e-4], rtol=1e-9)


def test_plot_range_test_of_a_run_that_diverged_at_once():
  nan = np.full(RT_N, np.nan, np.float32)
  r = _range_result(losses=nan, smoothed=nan, num_valid=0, steepest=float("nan"),
                    minimum_div_10=float("nan"))
  ax = lrjax.plot_range_test(r, ax=_ax())
  assert [l.get_label() for l in ax.lines] == ["loss", "smoothed loss"]
  assert ax.get_title() == "" and ax.get_xscale() == "log"


def test_plot_range_test_of_a_real_run_marks_its_suggestions():
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel

  r = lrjax.lr_range_test(lambda w, _: 2.0 * jnp.sum(w ** 2), jnp.ones(3), num_steps=60)
  ax = lrjax.plot_range_test(r, ax=_ax())
  marks = [v for v in (r.steepest, r.valley, r.minimum_div_10) if np.isfinite(v)]
  assert len(marks) == 3
  np.testing.assert_array_equal([l.get_xdata()[0] for l in ax.lines[2:]], marks)


def test_plot_range_test_without_ax_makes_a_pyplot_figure():
  ax = lrjax.plot_range_test(_range_result())
  try:
    assert ax.figure.number in plt.get_fignums()
    assert len(ax.lines) == 4
  finally:
    plt.close(ax.figure)


@pytest.mark.parametrize(
    "result, title, match",
    [
        (tuple(_range_result()), None, "result must be a RangeTestResult .*got tuple"),
        (_range_result()._asdict(), None, "result must be a RangeTestResult .*got dict"),
        (None, None, "result must be a RangeTestResult"),
        (_range_result(losses=np.ones(RT_N - 1)), None,
         r".*one length > 0, got shapes \(30,\), \(29,\)"),
        (_range_result(rates=np.ones((RT_N, 1))), None, ".*must be 1-D arrays"),
        (_range_result(rates=np.ones(0), losses=np.ones(0), smoothed=np.ones(0)), None,
         ".*must be 1-D arrays of one length > 0"),
        (_range_result(valley=None), None, "result.steepest, result.valley and .* must be numbers"),
        (_range_result(), 3, "title must be None or a string, got 3"),
    ],
)
def test_plot_range_test_rejects_bad_arguments(result, title, match):
  with pytest.raises(ValueError, match=f"plot_range_test: {match}"):
    lrjax.plot_range_test(result, ax=_ax(), title=title)


def test_plot_range_test_without_matplotlib_names_the_extra(monkeypatch):
  monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
  monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
  with pytest.raises(ImportError, match=r"lrjax.plot_range_test needs matplotlib.*"
                                         r"pip install 'lrjax\[plot\]'"):
    lrjax.plot_range_test(_range_result())


# --- the command line ----------------------------------------------------------


def run(capsys, *argv):
  code = main(list(argv))
  out, err = capsys.readouterr()
  return code, out, err


def test_show_prints_values(capsys):
  steps = [0, 29, 30, 61, 1000]
  code, out, err = run(capsys, "show", "step_decay(0.1, step_size=30, gamma=0.5)",
                       "--at", ",".join(map(str, steps)))
  assert code == 0 and err == ""
  lines = out.splitlines()
  assert [int(l.split()[0]) for l in lines] == steps
  got = [float(l.split()[1]) for l in lines]
  np.testing.assert_allclose(got, step_lr(steps, 0.1, 30, 0.5), rtol=5e-6)  # 6 digits
  assert lines[-1].split()[1] == f"{0.1 * 0.5**33:.6g}"


def test_show_evaluates_arithmetic_and_products(capsys):
  code, out, _ = run(capsys, "show",
                     "0.5 * warmup(step_decay(0.1, step_size=2 * 15, gamma=1 / 10), steps=10)",
                     "--at", "5,10,40")
  assert code == 0
  got = [float(l.split()[1]) for l in out.splitlines()]
  expected = [0.5 * 0.1 * 5 / 10, 0.5 * 0.1, 0.5 * 0.1 * 0.1]  # warmup shifts by 10
  np.testing.assert_allclose(got, expected, rtol=5e-6)


def test_show_json_round_trip(capsys, tmp_path):
  expr = "sequence([constant(0.1), step_decay(0.3, step_size=4, gamma=0.5)], boundaries=[5])"
  code, out, _ = run(capsys, "show", expr, "--json")
  assert code == 0
  d = json.loads(out)
  assert d == {
      "type": "sequence",
      "schedules": [
          {"type": "constant", "value": 0.1},
          {"type": "step_decay", "init_value": 0.3, "step_size": 4, "gamma": 0.5},
      ],
      "boundaries": [5],
  }
  path = tmp_path / "s.json"
  path.write_text(out)
  expected = [0.1, 0.3, 0.15]  # steps 4, 5, 9: schedule 2 counts from step 5
  for source in (out.strip(), f"@{path}"):
    code, vals, _ = run(capsys, "show", source, "--at", "4,5,9")
    assert code == 0
    np.testing.assert_allclose([float(l.split()[1]) for l in vals.splitlines()],
                               expected, rtol=5e-6)


def test_show_a_cooldown_and_its_nested_json(capsys):
  expr = "cooldown(constant(0.3), start=100, decay_steps=20)"
  code, out, _ = run(capsys, "show", expr, "--at", "99,100,105,119,120,5000")
  assert code == 0
  got = [float(l.split()[1]) for l in out.splitlines()]
  # 1-sqrt (the default) from 0.3 at step 100 to 0 at step 120
  expected = [0.3, 0.3, 0.3 * (1 - np.sqrt(5 / 20)), 0.3 * (1 - np.sqrt(19 / 20)), 0.0, 0.0]
  np.testing.assert_allclose(got, expected, rtol=5e-6)
  code, out, _ = run(capsys, "show", expr, "--json")
  assert json.loads(out) == {"type": "cooldown", "schedule": {"type": "constant", "value": 0.3},
                             "start": 100, "decay_steps": 20, "end_value": 0.0,
                             "shape": "1-sqrt"}
  code, out, _ = run(capsys, "show", expr)
  assert out.strip() == expr


def test_show_prints_the_call_which_parses_back(capsys):
  code, out, _ = run(capsys, "show", "warmup(constant(0.2), steps=3, init_value=0.0)")
  assert code == 0
  assert out.strip() == "warmup(constant(0.2), steps=3)"
  assert parse_schedule(out).to_dict() == lrjax.warmup(lrjax.constant(0.2), steps=3).to_dict()


def test_list_names_every_constructor(capsys):
  code, out, _ = run(capsys, "list")
  assert code == 0
  assert [l.split("(")[0] for l in out.splitlines()] == _registry.names()
  assert "step_decay(init_value, *, step_size, gamma)" in out.splitlines()


def _col(expr, part):
  return expr.index(part) + 1


BAD = [
    # (expression, what the message says, where it points: a substring or None)
    ("os.system('ls')", "got attribute access 'os.system'", "os.system"),
    ("step_decay(0.1, step_size=30, gamma=os.sep)", "attribute access 'os.sep'", "os.sep"),
    ("__import__('os')", "unknown constructor '__import__'", "__import__"),
    ("__import__('os').system('ls')", "attribute access", "__import__"),
    ("lambda: constant(0.1)", "got lambda", "lambda"),
    ("nope(0.1)", "unknown constructor 'nope'; known: constant,", "nope"),
    ("constant(x)", "unknown name 'x'", "x)"),
    ("step_decay(0.1, step_size=30, gama=0.1)", "step_decay has no argument 'gama'", "gama"),
    ("step_decay(0.1, step_size=0, gamma=0.1)",
     "step_decay: step_size must be >= 1, got 0", "step_size=0"),
    ("constant(-0.1)", "constant: value must be >= 0.0, got -0.1", "-0.1"),
    ("step_decay(0.1, step_size=30)", "missing 1 required keyword-only argument: 'gamma'",
     "step_decay"),
    ("step_decay(0.1, 30, 0.1)", "step_decay takes 1 positional argument", "30"),
    ("constant(0.1)[0]", "got subscript", "constant"),
    ("constant(*[0.1])", "star unpacking", "*[0.1]"),
    ("constant(0.1) + constant(0.2)", "only '+' between numbers", "constant"),
    ("constant(0.1) * 'a'", "only '*' between schedules and numbers", "constant"),
    ("constant(0.1", "'(' was never closed", "("),
    ("constant", "'constant' is a constructor: call it", "constant"),
    ("[constant(0.1)]", "expected a schedule", None),
    ('{"type": "nope"}', "bad schedule JSON: from_dict: unknown schedule 'nope'", None),
    ('{"type": ', "bad JSON at line 1", None),
    ("@/no/such/file.json", "cannot read '/no/such/file.json'", None),
]


@pytest.mark.parametrize("expr, message, at", BAD, ids=[b[0] for b in BAD])
def test_bad_expression_is_one_line_and_exit_2(capsys, expr, message, at):
  code, out, err = run(capsys, "show", expr, "--at", "0")
  assert code == 2
  assert out == ""
  assert err.count("\n") == 1 and err.startswith("lrjax: ")
  assert message in err
  if at is not None:
    assert f"at col {_col(expr, at)}:" in err
  with pytest.raises(ExpressionError):  # the same through the Python API
    parse_schedule(expr)


def test_plot_command_writes_an_image(capsys, tmp_path):
  out = tmp_path / "cos.png"
  code, stdout, err = run(
      capsys, "plot", "step_decay(0.1, step_size=300, gamma=0.5)",
      "warmup(constant(0.05), steps=100)", "--steps", "1000", "--log",
      "--label", "a", "--label", "b", "--title", "t", "-o", str(out))
  assert code == 0 and err == "" and stdout.strip() == f"wrote {out}"
  img = matplotlib.image.imread(out)
  assert img.shape[:2] == (540, 960)  # 8 x 4.5 inches at 120 dpi
  rgb = img[..., :3].reshape(-1, 3)
  assert rgb.std() > 0.05  # not blank
  blue = np.all(np.abs(rgb - TAB_BLUE) < 0.02, axis=1).sum()
  assert blue > 500  # the first curve was drawn


def test_plot_command_default_output(capsys, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  code, _, _ = run(capsys, "plot", "constant(0.1)", "--steps", "10")
  assert code == 0
  assert matplotlib.image.imread(tmp_path / "schedule.png").shape[:2] == (540, 960)


def test_plot_command_label_count_mismatch(capsys, tmp_path):
  code, out, err = run(capsys, "plot", "constant(0.1)", "constant(0.2)", "--label", "a",
                       "--steps", "10", "-o", str(tmp_path / "x.png"))
  assert code == 2 and out == "" and err.count("\n") == 1
  assert "got 1 --label for 2 schedules" in err
  assert not (tmp_path / "x.png").exists()


def test_plot_command_without_matplotlib(capsys, tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, "matplotlib", None)
  monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
  code, _, err = run(capsys, "plot", "constant(0.1)", "--steps", "10",
                     "-o", str(tmp_path / "x.png"))
  assert code == 1 and err.count("\n") == 1
  assert "pip install 'lrjax[plot]'" in err


def test_python_m_lrjax_and_lazy_matplotlib():
  # -X importtime lists every module the run imports: `show` needs no
  # matplotlib, so its absence shows that importing lrjax does not pull it in.
  proc = subprocess.run(
      [sys.executable, "-X", "importtime", "-m", "lrjax", "show",
       "step_decay(0.1, step_size=30, gamma=0.1)", "--at", "0,30,60"],
      cwd=ROOT, capture_output=True, text=True, timeout=120,
      env={**os.environ, "JAX_PLATFORMS": "cpu"},
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  got = [float(l.split()[1]) for l in proc.stdout.splitlines()]
  np.testing.assert_allclose(got, step_lr([0, 30, 60], 0.1, 30, 0.1), rtol=5e-6)
  imported = {l.rsplit("|", 1)[-1].strip() for l in proc.stderr.splitlines() if "|" in l}
  assert "lrjax._cli" in imported  # the listing is what we think it is
  assert not any(m.split(".")[0] == "matplotlib" for m in imported)


# --- the gallery script --------------------------------------------------------


@functools.cache
def _gallery():
  """docs/make_gallery.py as a module (loaded once)."""
  spec = importlib.util.spec_from_file_location("make_gallery", ROOT / "docs" / "make_gallery.py")
  mod = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = mod  # dataclasses look their module up
  spec.loader.exec_module(mod)
  return mod


def test_gallery_has_an_example_for_every_constructor():
  gallery = _gallery()
  missing = sorted(set(_registry.names()) - set(gallery.EXAMPLES))
  assert not missing, f"docs/make_gallery.py EXAMPLES lacks {missing}"


def test_gallery_script_fails_on_a_missing_entry(monkeypatch, tmp_path):
  gallery = _gallery()
  monkeypatch.delitem(gallery.EXAMPLES, "step_decay")
  with pytest.raises(SystemExit, match="no EXAMPLES entry for step_decay"):
    gallery.main(["--out", str(tmp_path)])
  assert not list(tmp_path.iterdir())


def test_gallery_script_writes_one_image_per_family(tmp_path, capsys):
  gallery = _gallery()
  written = gallery.main(["--out", str(tmp_path)])
  families = {_registry.lookup(n).__module__.rsplit(".", 1)[-1].lstrip("_")
              for n in _registry.names()}
  assert sorted(os.path.basename(p) for p in written) == sorted(
      f"gallery_{f}.png" for f in families)
  assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
      os.path.basename(p) for p in written)
  drawn = capsys.readouterr().out
  for name in _registry.names():  # every constructor has its panel
    assert f" {name}," in drawn or f" {name}\n" in drawn
  for path in written:
    img = matplotlib.image.imread(path)
    assert img.shape[1] == 960 and img.shape[0] >= 320  # 12 in wide at 80 dpi
    rgb = img[..., :3].reshape(-1, 3)
    assert np.all(np.abs(rgb - TAB_BLUE) < 0.02, axis=1).sum() > 200  # curves drawn
