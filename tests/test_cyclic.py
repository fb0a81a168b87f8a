"""cyclic, one_cycle and their momentum curves: checks, traced arguments,
specific properties, and PyTorch's CyclicLR / OneCycleLR (rates and the
momentum they cycle) where installed."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lrjax
import reference as ref


def _cyc(**kw):
  args = {"base_value": 0.01, "max_value": 0.1, "step_size_up": 10}
  return lrjax.cyclic(**{**args, **kw})


def _one(**kw):
  return lrjax.one_cycle(**{"peak_value": 0.1, "total_steps": 100, **kw})


def _cm(**kw):
  return lrjax.cyclic_momentum(**{"step_size_up": 10, **kw})


def _om(**kw):
  return lrjax.one_cycle_momentum(**{"total_steps": 100, **kw})


BAD = [
    (lambda: _cyc(base_value=-0.01), "cyclic: base_value must be >= 0.0"),
    (lambda: _cyc(max_value=float("nan")), "cyclic: max_value must be finite"),
    (lambda: _cyc(max_value=0.001),
     "cyclic: max_value must be >= base_value, got max_value=0.001, base_value=0.01"),
    (lambda: _cyc(step_size_up=0), "cyclic: step_size_up must be >= 1"),
    (lambda: _cyc(step_size_up=2.5), "cyclic: step_size_up must be an integer"),
    (lambda: _cyc(step_size_down=-1), "cyclic: step_size_down must be >= 0"),
    (lambda: _cyc(step_size_down="10"), "cyclic: step_size_down must be an integer"),
    (lambda: _cyc(step_size_up=2**30, step_size_down=2**30),
     "cyclic: step_size_up + step_size_down must be <= 2147483647"),
    (lambda: _cyc(mode="triangle"), "cyclic: mode must be one of"),
    (lambda: _cyc(mode="exp_range", gamma=0.0), "cyclic: gamma must be > 0.0"),
    (lambda: _cyc(mode="exp_range", gamma=1.01), "cyclic: gamma must be <= 1.0"),
    (lambda: _one(peak_value=-1.0), "one_cycle: peak_value must be >= 0.0"),
    (lambda: _one(total_steps=0), "one_cycle: total_steps must be >= 1"),
    (lambda: _one(total_steps=99.5), "one_cycle: total_steps must be an integer"),
    (lambda: _one(pct_start=0.0), "one_cycle: pct_start must be > 0.0"),
    (lambda: _one(pct_start=1.0), "one_cycle: pct_start must be < 1.0"),
    (lambda: _one(pct_start=-0.3), "one_cycle: pct_start must be > 0.0"),
    (lambda: _one(pct_start=0.6, three_phase=True),
     "one_cycle: pct_start must be <= 0.5 with three_phase=True"),
    (lambda: _one(pct_start=0.01),
     "one_cycle: pct_start * total_steps must be > 1 (the first phase ends at step "
     "pct_start * total_steps - 1), got pct_start=0.01, total_steps=100"),
    (lambda: _one(total_steps=1), "one_cycle: pct_start * total_steps must be > 1"),
    (lambda: _one(shape="cos"), "one_cycle: shape must be one of ('cosine', 'linear')"),
    (lambda: _one(shape="1-sqrt"), "one_cycle: shape must be one of ('cosine', 'linear')"),
    (lambda: _one(div_factor=0.0), "one_cycle: div_factor must be > 0.0"),
    (lambda: _one(final_div_factor=-1.0), "one_cycle: final_div_factor must be > 0.0"),
    (lambda: _one(three_phase=1), "one_cycle: three_phase must be a bool"),
    (lambda: _cm(base_value=-0.1), "cyclic_momentum: base_value must be >= 0.0"),
    (lambda: _cm(max_value=1.5), "cyclic_momentum: max_value must be <= 1.0"),
    (lambda: _cm(base_value=0.95),
     "cyclic_momentum: max_value must be >= base_value, got max_value=0.9, "
     "base_value=0.95"),
    (lambda: _cm(step_size_up=0), "cyclic_momentum: step_size_up must be >= 1"),
    (lambda: _cm(step_size_down=1.5), "cyclic_momentum: step_size_down must be an integer"),
    (lambda: _cm(mode="cos"), "cyclic_momentum: mode must be one of"),
    (lambda: _cm(mode="exp_range", gamma=2.0), "cyclic_momentum: gamma must be <= 1.0"),
    (lambda: _om(base_value=float("nan")), "one_cycle_momentum: base_value must be finite"),
    (lambda: _om(max_value=1.01), "one_cycle_momentum: max_value must be <= 1.0"),
    (lambda: _om(base_value=0.96),
     "one_cycle_momentum: max_value must be >= base_value"),
    (lambda: _om(total_steps=0), "one_cycle_momentum: total_steps must be >= 1"),
    (lambda: _om(pct_start=1.0), "one_cycle_momentum: pct_start must be < 1.0"),
    (lambda: _om(pct_start=0.6, three_phase=True),
     "one_cycle_momentum: pct_start must be <= 0.5 with three_phase=True"),
    (lambda: _om(total_steps=3), "one_cycle_momentum: pct_start * total_steps must be > 1"),
    (lambda: _om(shape="cos"), "one_cycle_momentum: shape must be one of"),
    (lambda: _om(three_phase="yes"), "one_cycle_momentum: three_phase must be a bool"),
]


@pytest.mark.parametrize("make,message", BAD, ids=[m for _, m in BAD])
def test_bad_input_raises_value_error_naming_the_argument(make, message):
  with pytest.raises(ValueError) as e:
    make()
  assert message in str(e.value)


def test_gamma_outside_exp_range_warns():
  with pytest.warns(UserWarning, match="gamma=0.9 is used only by mode='exp_range'"):
    _cyc(mode="triangular2", gamma=0.9)


def test_step_size_down_none_means_step_size_up():
  assert _cyc(step_size_up=7) == _cyc(step_size_up=7, step_size_down=7)
  assert "step_size_down=7" in repr(_cyc(step_size_up=7))


def test_triangular2_halves_each_peak_exactly():
  s = _cyc(base_value=0.0, max_value=1.0, step_size_up=3, step_size_down=5,
           mode="triangular2")
  peaks = 3 + 8 * np.arange(10)
  np.testing.assert_array_equal(s(jnp.asarray(peaks)), 0.5 ** np.arange(10))
  np.testing.assert_array_equal(s(jnp.asarray(peaks + 5)), 0.0)  # cycle starts


def test_exp_range_with_gamma_one_is_triangular():
  t = jnp.arange(100)
  a = _cyc(step_size_down=13, mode="exp_range", gamma=1.0)(t)
  b = _cyc(step_size_down=13)(t)
  np.testing.assert_array_equal(a, b)


def test_sawtooth_rises_then_restarts():
  s = _cyc(base_value=0.0, max_value=1.0, step_size_up=4, step_size_down=0)
  np.testing.assert_allclose(s(jnp.arange(9)), [0, 0.25, 0.5, 0.75, 0, 0.25, 0.5, 0.75, 0])


def test_cyclic_is_exact_at_huge_int64_steps():
  steps = np.array([2**62 + 3, 2**62 + 17, 2**53 + 1, 10**18 + 11], np.int64)
  with jax.enable_x64(True):
    s = _cyc(step_size_down=7)
    out = np.asarray(s(jnp.asarray(steps, jnp.int64)))
  np.testing.assert_allclose(out, ref.cyclic_lr(steps, 0.01, 0.1, 10, 7), rtol=1e-6)


def test_uint32_steps_past_int32():
  steps = np.array([2**32 - 1, 2**32 - 8, 2**31 + 9], np.int64)
  out = _cyc(step_size_down=7)(jnp.asarray(steps, jnp.uint32))
  np.testing.assert_allclose(out, ref.cyclic_lr(steps, 0.01, 0.1, 10, 7), rtol=1e-6)


def test_one_cycle_holds_its_final_value():
  s = _one(div_factor=20.0, final_div_factor=50.0)
  final = 0.1 / 20.0 / 50.0
  np.testing.assert_allclose(s(jnp.array([99, 100, 1000, 2**31 - 1])), final, rtol=1e-6)
  np.testing.assert_allclose(s(0), 0.1 / 20.0, rtol=1e-6)
  np.testing.assert_allclose(s(99), final, rtol=1e-6)
  assert float(s(98)) > final


@pytest.mark.parametrize("shape", ["cosine", "linear"])
def test_three_phase_is_symmetric_about_the_peak(shape):
  # pct_start * total_steps - 1 = 24: the first two phases mirror each other.
  s = _one(pct_start=0.25, shape=shape, three_phase=True)
  k = jnp.arange(25)
  np.testing.assert_allclose(s(24 - k), s(24 + k), rtol=1e-6)
  np.testing.assert_allclose(s(24), 0.1, rtol=1e-6)
  np.testing.assert_allclose(s(48), 0.1 / 25.0, rtol=1e-6)


def test_traced_arguments_under_vmap_and_jit():
  t = np.arange(60)
  out = jax.vmap(lambda m, u: lrjax.cyclic(base_value=0.0, max_value=m, step_size_up=u,
                                           mode="triangular2")(t))(
      jnp.array([1.0, 2.0]), jnp.array([5, 8]))
  np.testing.assert_allclose(out[0], ref.cyclic_lr(t, 0.0, 1.0, 5, mode="triangular2"),
                             rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(out[1], ref.cyclic_lr(t, 0.0, 2.0, 8, mode="triangular2"),
                             rtol=1e-6, atol=1e-7)
  t = np.arange(120)
  out = jax.vmap(lambda p, n: lrjax.one_cycle(peak_value=0.1, total_steps=n, pct_start=p)(t))(
      jnp.array([0.3, 0.25]), jnp.array([100, 80]))
  np.testing.assert_allclose(out[0], ref.one_cycle_lr(t, 0.1, 100, 0.3), rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(out[1], ref.one_cycle_lr(t, 0.1, 80, 0.25), rtol=1e-5, atol=1e-7)
  f = jax.jit(lambda g, t: lrjax.cyclic(base_value=0.1, max_value=0.2, step_size_up=3,
                                        mode="exp_range", gamma=g)(t))
  np.testing.assert_allclose(f(0.5, 4), 0.1 + 0.1 * (2 / 3) * 0.5**4, rtol=1e-6)


# --- PyTorch ---------------------------------------------------------------------


def _torch_lrs(make_scheduler, steps):
  torch = pytest.importorskip("torch")
  param = torch.nn.Parameter(torch.zeros(1))
  opt = torch.optim.SGD([param], lr=0.1)
  sched = make_scheduler(torch.optim.lr_scheduler, opt)
  lrs = [sched.get_last_lr()[0]]
  for _ in range(steps - 1):
    opt.step()
    sched.step()
    lrs.append(sched.get_last_lr()[0])
  return np.array(lrs)


@pytest.mark.parametrize("up,down,mode,gamma", [
    (20, None, "triangular", 1.0),
    (5, 15, "triangular2", 1.0),
    (12, 3, "exp_range", 0.99609375),  # 1 - 2**-8: exact in float32
    (4, 0, "triangular", 1.0),
])
def test_matches_torch_cyclic_lr(up, down, mode, gamma):
  expected = _torch_lrs(lambda m, o: m.CyclicLR(
      o, base_lr=0.002, max_lr=0.01, step_size_up=up, step_size_down=down, mode=mode,
      gamma=gamma, cycle_momentum=False), 300)
  s = lrjax.cyclic(base_value=0.002, max_value=0.01, step_size_up=up,
                   step_size_down=down, mode=mode, gamma=gamma)
  np.testing.assert_allclose(s(jnp.arange(300)), expected, rtol=1e-6, atol=1e-6 * 0.01)


def test_torch_exp_range_with_an_inexact_gamma_drifts_as_documented():
  # gamma = 0.999 rounds to float32 with relative error 1.3e-8, amplified t
  # times in gamma**t: within 300 steps the gap stays below t * 6e-8.
  expected = _torch_lrs(lambda m, o: m.CyclicLR(
      o, base_lr=0.0, max_lr=1.0, step_size_up=10, mode="exp_range", gamma=0.999,
      cycle_momentum=False), 300)
  s = lrjax.cyclic(base_value=0.0, max_value=1.0, step_size_up=10, mode="exp_range",
                   gamma=0.999)
  out = np.asarray(s(jnp.arange(300)), np.float64)
  bound = np.arange(300) * 6e-8 + 1e-6
  assert np.all(np.abs(out - expected) <= bound * np.abs(expected) + 1e-7)


_SHAPE = {"cos": "cosine", "linear": "linear"}  # torch's anneal_strategy -> shape


@pytest.mark.parametrize("total,pct,anneal,three_phase,div,final_div", [
    (100, 0.3, "cos", False, 25.0, 1e4),
    (100, 0.29, "cos", False, 25.0, 1e4),
    (250, 0.25, "linear", False, 10.0, 100.0),
    (200, 0.3, "cos", True, 25.0, 1e4),
    (37, 0.45, "linear", True, 5.0, 1e3),
    (333, 0.5, "cos", True, 25.0, 1e4),
])
def test_matches_torch_one_cycle_lr(total, pct, anneal, three_phase, div, final_div):
  expected = _torch_lrs(lambda m, o: m.OneCycleLR(
      o, max_lr=0.1, total_steps=total, pct_start=pct, anneal_strategy=anneal,
      div_factor=div, final_div_factor=final_div, three_phase=three_phase,
      cycle_momentum=False), total)
  s = lrjax.one_cycle(peak_value=0.1, total_steps=total, pct_start=pct,
                      shape=_SHAPE[anneal], div_factor=div, final_div_factor=final_div,
                      three_phase=three_phase)
  np.testing.assert_allclose(s(jnp.arange(total)), expected, rtol=1e-6, atol=1e-6 * 0.1)


# --- the momentum curves -------------------------------------------------------


def test_one_cycle_momentum_is_lowest_where_the_rate_peaks():
  t = jnp.arange(200)
  for three_phase in (False, True):
    lr = np.asarray(_one(total_steps=200, pct_start=0.3, three_phase=three_phase)(t))
    m = np.asarray(_om(total_steps=200, pct_start=0.3, three_phase=three_phase)(t))
    assert np.argmax(lr) == np.argmin(m) == 59  # pct_start * total_steps - 1
    np.testing.assert_allclose(m[[0, 59, 199]], [0.95, 0.85, 0.95], rtol=1e-6)
  np.testing.assert_allclose(_om()(jnp.array([99, 100, 10**6])), 0.95, rtol=1e-6)


def test_cyclic_momentum_mirrors_the_rate_in_its_band():
  # With the same band the rate and the momentum add up to base + max.
  for mode, gamma in [("triangular", 1.0), ("triangular2", 1.0), ("exp_range", 0.984375)]:
    kw = dict(base_value=0.8, max_value=0.9, step_size_up=7, step_size_down=3,
              mode=mode, gamma=gamma)
    t = jnp.arange(100)
    np.testing.assert_allclose(
        lrjax.cyclic(**kw)(t) + lrjax.cyclic_momentum(**kw)(t), 1.7, rtol=1e-6)


def test_momentum_defaults_are_pytorchs():
  np.testing.assert_allclose([_om()(0), _om()(29)], [0.95, 0.85], rtol=1e-6)
  np.testing.assert_allclose([_cm()(0), _cm()(10)], [0.9, 0.8], rtol=1e-6)


def test_momentum_traced_arguments_under_vmap():
  t = np.arange(120)
  out = jax.vmap(lambda b, n: lrjax.one_cycle_momentum(total_steps=n, base_value=b)(t))(
      jnp.array([0.85, 0.5]), jnp.array([100, 80]))
  np.testing.assert_allclose(out[0], ref.one_cycle_momentum(t, 100, 0.85), rtol=1e-5)
  np.testing.assert_allclose(out[1], ref.one_cycle_momentum(t, 80, 0.5), rtol=1e-5)
  out = jax.vmap(lambda m, u: lrjax.cyclic_momentum(max_value=m, step_size_up=u)(t))(
      jnp.array([0.9, 0.99]), jnp.array([5, 8]))
  np.testing.assert_allclose(out[0], ref.cyclic_momentum(t, 0.8, 0.9, 5), rtol=1e-6)
  np.testing.assert_allclose(out[1], ref.cyclic_momentum(t, 0.8, 0.99, 8), rtol=1e-6)


def _torch_momentum(make_scheduler, steps, *, adam):
  """What the scheduler writes into param_group["momentum"] (or betas[0])."""
  torch = pytest.importorskip("torch")
  param = torch.nn.Parameter(torch.zeros(1))
  if adam:
    opt = torch.optim.Adam([param], lr=0.1)
  else:
    opt = torch.optim.SGD([param], lr=0.1, momentum=0.9)
  sched = make_scheduler(torch.optim.lr_scheduler, opt)
  read = (lambda g: g["betas"][0]) if adam else (lambda g: g["momentum"])
  out = [read(opt.param_groups[0])]
  for _ in range(steps - 1):
    opt.step()
    sched.step()
    out.append(read(opt.param_groups[0]))
  return np.array(out, np.float64)


@pytest.mark.parametrize("adam", [False, True], ids=["sgd_momentum", "adam_beta1"])
@pytest.mark.parametrize("total,pct,anneal,three_phase,base,top", [
    (100, 0.3, "cos", False, 0.85, 0.95),
    (100, 0.29, "cos", False, 0.85, 0.95),
    (250, 0.25, "linear", False, 0.8, 0.9),
    (200, 0.3, "cos", True, 0.85, 0.95),
    (37, 0.45, "linear", True, 0.5, 0.99),
])
def test_matches_torch_one_cycle_momentum(total, pct, anneal, three_phase, base, top,
                                          adam):
  expected = _torch_momentum(lambda m, o: m.OneCycleLR(
      o, max_lr=0.1, total_steps=total, pct_start=pct, anneal_strategy=anneal,
      three_phase=three_phase, base_momentum=base, max_momentum=top), total, adam=adam)
  np.testing.assert_allclose(
      expected, ref.one_cycle_momentum(np.arange(total), total, base, top, pct, anneal,
                                       three_phase), rtol=1e-12)
  s = lrjax.one_cycle_momentum(total_steps=total, base_value=base, max_value=top,
                               pct_start=pct, shape=_SHAPE[anneal],
                               three_phase=three_phase)
  np.testing.assert_allclose(s(jnp.arange(total)), expected, rtol=1e-6)


@pytest.mark.parametrize("adam", [False, True], ids=["sgd_momentum", "adam_beta1"])
@pytest.mark.parametrize("up,down,mode,gamma", [
    (20, None, "triangular", 1.0),
    (5, 15, "triangular2", 1.0),
    (12, 3, "exp_range", 0.99609375),  # 1 - 2**-8: exact in float32
    (4, 0, "triangular", 1.0),
])
def test_matches_torch_cyclic_momentum(up, down, mode, gamma, adam):
  expected = _torch_momentum(lambda m, o: m.CyclicLR(
      o, base_lr=0.002, max_lr=0.01, step_size_up=up, step_size_down=down, mode=mode,
      gamma=gamma, base_momentum=0.8, max_momentum=0.9), 300, adam=adam)
  np.testing.assert_allclose(
      expected, ref.cyclic_momentum(np.arange(300), 0.8, 0.9, up, down, mode, gamma),
      rtol=1e-12)
  s = lrjax.cyclic_momentum(base_value=0.8, max_value=0.9, step_size_up=up,
                            step_size_down=down, mode=mode, gamma=gamma)
  np.testing.assert_allclose(s(jnp.arange(300)), expected, rtol=1e-6)
