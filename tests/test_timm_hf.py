"""timm's and Hugging Face's schedules (issue 14): bad input, the LR noise's
law, and parity against the real timm / transformers classes where they are
installed (the parity tests skip otherwise)."""

from __future__ import annotations

import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lrjax
from cases import PORTING_ROWS

BAD = [
    (lambda: lrjax.cosine_decay(0.1, decay_steps=10, cycles=0.0), "cosine_decay: cycles must be > 0.0"),
    (lambda: lrjax.cosine_decay(0.1, decay_steps=10, cycles=-1.0), "cosine_decay: cycles must be > 0.0"),
    (lambda: lrjax.cosine_decay(0.1, decay_steps=10, k_decay=0.0), "cosine_decay: k_decay must be > 0.0"),
    (lambda: lrjax.cosine_decay(0.1, decay_steps=10, k_decay=float("nan")),
     "cosine_decay: k_decay must be finite"),
    (lambda: lrjax.cosine_restarts(0.1, cycle_steps=10, cycle_limit=0),
     "cosine_restarts: cycle_limit must be >= 1"),
    (lambda: lrjax.cosine_restarts(0.1, cycle_steps=10, cycle_limit=1.5),
     "cosine_restarts: cycle_limit must be an integer"),
    (lambda: lrjax.cosine_restarts(0.1, cycle_steps=10, k_decay=-1.0),
     "cosine_restarts: k_decay must be > 0.0"),
    (lambda: lrjax.cosine_restarts(0.1, cycle_steps=10, scale_peak="yes"),
     "cosine_restarts: scale_peak must be a bool"),
    (lambda: lrjax.polynomial_decay(0.1, decay_steps=10, k_decay=0.0),
     "polynomial_decay: k_decay must be > 0.0"),
    (lambda: lrjax.inverse_sqrt(0.1, timescale=0.0), "inverse_sqrt: timescale must be > 0.0"),
    (lambda: lrjax.inverse_sqrt(0.1, timescale=float("inf")), "inverse_sqrt: timescale must be finite"),
    (lambda: lrjax.warmup_stable_decay(0.1, warmup_steps=1, stable_steps=1, decay_steps=1,
                                       warmup_shape="cos"),
     "warmup_stable_decay: warmup_shape must be one of"),
    (lambda: lrjax.warmup(lrjax.constant(0.1), steps=3, shift=1), "warmup: shift must be a bool"),
    (lambda: lrjax.tanh_decay(0.1, decay_steps=10, lower=3.0, upper=3.0),
     "tanh_decay: lower must be < upper"),
    (lambda: lrjax.tanh_decay(0.1, decay_steps=10, lower=4.0), "tanh_decay: lower must be < upper"),
    (lambda: lrjax.tanh_decay(0.1, decay_steps=0), "tanh_decay: decay_steps must be >= 1"),
    (lambda: lrjax.tanh_decay(-0.1, decay_steps=10), "tanh_decay: init_value must be >= 0.0"),
    (lambda: lrjax.tanh_decay(0.1, decay_steps=10, upper=float("inf")), "tanh_decay: upper must be finite"),
    (lambda: lrjax.with_noise(0.1, seed=0), "with_noise: schedule must be an lrjax schedule"),
    (lambda: lrjax.with_noise(lrjax.constant(0.1), seed=-1), "with_noise: seed must be >= 0"),
    (lambda: lrjax.with_noise(lrjax.constant(0.1), seed=0, pct=0.0), "with_noise: pct must be > 0.0"),
    (lambda: lrjax.with_noise(lrjax.constant(0.1), seed=0, pct=1.0), "with_noise: pct must be < 1.0"),
    (lambda: lrjax.with_noise(lrjax.constant(0.1), seed=0, std=0.0), "with_noise: std must be > 0.0"),
    (lambda: lrjax.with_noise(lrjax.constant(0.1), seed=0, kind="gauss"), "with_noise: kind must be one of"),
    (lambda: lrjax.with_noise(lrjax.constant(0.1), seed=0, begin_step=-1),
     "with_noise: begin_step must be >= 0"),
    (lambda: lrjax.with_noise(lrjax.constant(0.1), seed=0, begin_step=5, end_step=5),
     "with_noise: end_step must be > begin_step"),
]


@pytest.mark.parametrize("make,message", BAD, ids=[m for _, m in BAD])
def test_bad_input_raises_value_error_naming_the_argument(make, message):
  with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
    make()


def test_timm_warmup_prefix_false_number():
  # The check: timm, t_initial=100, warmup_t=10: 0.09755 at step 10.
  s = lrjax.warmup(lrjax.cosine_decay(0.1, decay_steps=100), steps=10, shift=False)
  np.testing.assert_allclose(s(10), 0.05 * (1 + math.cos(math.pi * 0.1)), rtol=1e-6)
  assert f"{float(s(10)):.5f}" == "0.09755"


# --- the porting-table rows outside the generic cases ------------------------------

_jit_eval = jax.jit(lambda s, t: s(t))


@pytest.mark.parametrize("case", PORTING_ROWS, ids=[c.id for c in PORTING_ROWS])
def test_porting_rows_match_their_references(case):
  """Each row's lrjax expression against the float64 port of timm's /
  transformers' source, eager and jitted, int32 and uint32 steps, around each
  boundary and far past the end (the generic tests' grid)."""
  grid = case.within(np.concatenate([case.grid(), [np.iinfo(np.int32).max]]))
  want = case.ref(grid)
  s = case.build()
  atol = 1e-6 * float(np.max(np.abs(want)))
  with jax.numpy_dtype_promotion("strict"):
    for dtype in (jnp.int32, jnp.uint32):
      steps = jnp.asarray(grid, dtype)
      for out in (s(steps), _jit_eval(s, steps)):
        assert out.dtype == jnp.float32 and out.shape == want.shape
        np.testing.assert_allclose(out, want, rtol=1e-6, atol=atol)
  assert lrjax.from_dict(s.to_dict()) == s


# --- with_noise: its law -------------------------------------------------------

N = 20_000


def _draws(kind, pct, std=1.0, seed=0):
  s = lrjax.with_noise(lrjax.constant(1.0), seed=seed, pct=pct, std=std, kind=kind)
  return np.asarray(s(jnp.arange(N, dtype=jnp.int32)), np.float64) - 1.0


def _truncated_normal_std(std, pct):
  a = pct / std
  phi = math.exp(-a * a / 2) / math.sqrt(2 * math.pi)
  mass = math.erf(a / math.sqrt(2))  # 2 Phi(a) - 1
  return std * math.sqrt(1 - 2 * a * phi / mass)


@pytest.mark.parametrize("kind,pct,std", [("normal", 0.67, 1.0), ("normal", 0.5, 0.2),
                                          ("uniform", 0.3, 1.0)])
def test_noise_law(kind, pct, std):
  n = _draws(kind, pct, std)
  assert np.all(np.abs(n) < pct + 1e-7)  # the truncation bound (float32 rate)
  want = _truncated_normal_std(std, pct) if kind == "normal" else pct / math.sqrt(3)
  se = want / math.sqrt(N)
  assert abs(n.mean()) < 5 * se
  assert abs(n.std() - want) < 0.03 * want
  assert np.abs(n).max() > 0.9 * pct  # it reaches out to the bound
  # Not the same draw at every step, nor the same for another seed.
  assert len(np.unique(n)) > N // 2
  assert not np.allclose(n[:100], _draws(kind, pct, std, seed=1)[:100])


def _same(a, b):
  """Equal up to float32 rounding of the base rate (jit fuses differently):
  a different draw would differ by up to 67%."""
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)


def test_noise_is_a_pure_function_of_seed_and_step():
  s = lrjax.with_noise(lrjax.cosine_decay(0.1, decay_steps=1000), seed=7, begin_step=0)
  steps = np.array([0, 1, 17, 500, 999, 2**31 - 1])
  eager = np.asarray(s(jnp.asarray(steps, jnp.int32)))
  for dtype in (jnp.int32, jnp.uint32):
    _same(jax.jit(lambda t: s(t))(jnp.asarray(steps, dtype)), eager)
  small = steps[steps < 2**24]
  _same(s(jnp.asarray(small, jnp.float32)), eager[: len(small)])
  _same([float(s(int(t))) for t in steps], eager)  # one at a time
  with jax.enable_x64(True):
    _same(s(jnp.asarray(steps, jnp.int64)), eager)
  again = lrjax.from_dict(s.to_dict())  # after a resume: the same draws
  _same(again(jnp.asarray(steps, jnp.int32)), eager)


def test_no_noise_outside_the_window():
  base = lrjax.step_decay(0.2, step_size=7, gamma=0.5)
  s = lrjax.with_noise(base, seed=1, begin_step=20, end_step=50)
  t = jnp.arange(0, 200, dtype=jnp.int32)
  out, clean = np.asarray(s(t)), np.asarray(base(t))
  outside = (np.arange(200) < 20) | (np.arange(200) >= 50)
  np.testing.assert_array_equal(out[outside], clean[outside])
  assert np.all(out[~outside] != clean[~outside])


# --- parity with timm --------------------------------------------------------------


def _timm_scheduler():
  """timm's scheduler classes, or a skip when timm (or torch) is absent.

  ``import timm`` imports its models (and torchvision); the scheduler modules
  need only torch, so they are loaded from timm's own files as a package of
  their own without running ``timm/__init__.py``.
  """
  import importlib
  import importlib.util
  import sys
  import types

  pytest.importorskip("torch")
  spec = importlib.util.find_spec("timm")
  if spec is None or not spec.submodule_search_locations:
    pytest.skip("timm is not installed")
  name = "_timm_scheduler_files"
  folder = pathlib.Path(list(spec.submodule_search_locations)[0]) / "scheduler"
  if name not in sys.modules:
    pkg = types.ModuleType(name)
    pkg.__path__ = [str(folder)]
    sys.modules[name] = pkg
  found = {}
  for m in ("scheduler", "cosine_lr", "tanh_lr", "poly_lr", "step_lr", "multistep_lr"):
    full = f"{name}.{m}"
    if full not in sys.modules:
      # timm's own file; multistep_lr.py's absolute "from timm.scheduler.
      # scheduler import" is pointed at this package's scheduler.py.
      src = (folder / f"{m}.py").read_text().replace("from timm.scheduler.", "from .")
      mod = types.ModuleType(full)
      mod.__package__ = name
      mod.__file__ = str(folder / f"{m}.py")
      sys.modules[full] = mod
      exec(compile(src, mod.__file__, "exec"), mod.__dict__)  # pylint: disable=exec-used
    found.update(vars(sys.modules[full]))
  return types.SimpleNamespace(**{k: v for k, v in found.items() if k.endswith("Scheduler")})


def _torch_opt(lr):
  torch = pytest.importorskip("torch")
  return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def _timm_run(cls, lr, steps, **kwargs):
  opt = _torch_opt(lr)
  sched = cls(opt, t_in_epochs=False, **kwargs)
  out = []
  for t in range(steps):
    sched.step_update(t)
    out.append(opt.param_groups[0]["lr"])
  return np.array(out)


TIMM_COSINE = [
    (dict(t_initial=100), lambda: lrjax.cosine_decay(0.1, decay_steps=100)),
    (dict(t_initial=100, warmup_t=10),
     lambda: lrjax.warmup(lrjax.cosine_decay(0.1, decay_steps=100), steps=10, shift=False)),
    (dict(t_initial=90, warmup_t=10, warmup_lr_init=1e-4, warmup_prefix=True, lr_min=1e-3),
     lambda: lrjax.warmup(lrjax.cosine_decay(0.1, decay_steps=90, end_value=1e-3), steps=10,
                          init_value=1e-4)),
    (dict(t_initial=30, lr_min=0.01, cycle_decay=0.5, cycle_limit=3, k_decay=2.0),
     lambda: lrjax.cosine_restarts(0.1, cycle_steps=30, m_mul=0.5, end_value=0.01,
                                   cycle_limit=3, k_decay=2.0, scale_peak=True)),
    (dict(t_initial=16, cycle_mul=2.0, cycle_decay=0.7, cycle_limit=4, warmup_t=5,
          warmup_prefix=True),
     lambda: lrjax.warmup(lrjax.cosine_restarts(0.1, cycle_steps=16, t_mul=2.0, m_mul=0.7,
                                                cycle_limit=4), steps=5)),
]


@pytest.mark.parametrize("kwargs,make", TIMM_COSINE)
def test_matches_timm_cosine_lr_scheduler(kwargs, make):
  scheduler = _timm_scheduler()
  steps = 300
  want = _timm_run(scheduler.CosineLRScheduler, 0.1, steps, **kwargs)
  got = np.asarray(make()(jnp.arange(steps, dtype=jnp.int32)))
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kwargs,make", [
    (dict(t_initial=100), lambda: lrjax.tanh_decay(0.1, decay_steps=100)),
    (dict(t_initial=50, lb=-5.0, ub=4.0, lr_min=0.002),
     lambda: lrjax.tanh_decay(0.1, decay_steps=50, lower=-5.0, upper=4.0, end_value=0.002)),
    (dict(t_initial=40, warmup_t=8, warmup_prefix=True),
     lambda: lrjax.warmup(lrjax.tanh_decay(0.1, decay_steps=40), steps=8)),
])
def test_matches_timm_tanh_lr_scheduler(kwargs, make):
  scheduler = _timm_scheduler()
  want = _timm_run(scheduler.TanhLRScheduler, 0.1, 150, **kwargs)
  got = np.asarray(make()(jnp.arange(150, dtype=jnp.int32)))
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_matches_timm_poly_lr_scheduler():
  scheduler = _timm_scheduler()
  want = _timm_run(scheduler.PolyLRScheduler, 0.1, 150, t_initial=100, power=0.5,
                   lr_min=1e-3, k_decay=1.5)
  s = lrjax.polynomial_decay(0.1, decay_steps=100, end_value=1e-3, power=0.5, k_decay=1.5)
  np.testing.assert_allclose(s(jnp.arange(150, dtype=jnp.int32)), want, rtol=1e-5, atol=1e-7)


def _timm_cycles(make, t_initial, cycle_mul, cycle_decay, cycle_limit, lr, lr_min):
  """timm's cycles as a sequence of one-cycle schedules, then lr_min (the
  porting row for cycle_limit > 1 with whole cycle lengths)."""
  lengths = [int(t_initial * cycle_mul**i) for i in range(cycle_limit)]
  parts = [make(lr * cycle_decay**i, n) for i, n in enumerate(lengths)]
  return lrjax.sequence(parts + [lrjax.constant(lr_min)],
                        boundaries=list(np.cumsum(lengths)))


@pytest.mark.parametrize("cls,make,kwargs", [
    ("TanhLRScheduler",
     lambda lr, n: lrjax.tanh_decay(lr, decay_steps=n, end_value=0.001),
     dict(t_initial=20, cycle_mul=2.0, cycle_decay=0.5, cycle_limit=3, lr_min=0.001)),
    ("PolyLRScheduler",
     lambda lr, n: lrjax.polynomial_decay(lr, decay_steps=n, end_value=0.001, power=0.5),
     dict(t_initial=25, cycle_decay=0.8, cycle_limit=3, lr_min=0.001)),
])
def test_timm_cycles_as_a_sequence(cls, make, kwargs):
  scheduler = _timm_scheduler()
  want = _timm_run(getattr(scheduler, cls), 0.1, 200, **kwargs)
  s = _timm_cycles(make, kwargs["t_initial"], kwargs.get("cycle_mul", 1.0),
                   kwargs["cycle_decay"], kwargs["cycle_limit"], 0.1, kwargs["lr_min"])
  np.testing.assert_allclose(s(jnp.arange(200, dtype=jnp.int32)), want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("cls,kwargs,make", [
    ("StepLRScheduler", dict(decay_t=30, decay_rate=0.5, warmup_t=5, warmup_lr_init=1e-3),
     lambda: lrjax.warmup(lrjax.step_decay(0.1, step_size=30, gamma=0.5), steps=5,
                          init_value=1e-3)),
    ("StepLRScheduler", dict(decay_t=30, decay_rate=0.5, warmup_t=5, warmup_prefix=False),
     lambda: lrjax.warmup(lrjax.step_decay(0.1, step_size=30, gamma=0.5), steps=5,
                          shift=False)),
    ("MultiStepLRScheduler", dict(decay_t=[30, 60, 61], decay_rate=0.1),
     lambda: lrjax.multistep(0.1, milestones=[29, 59, 60], gamma=0.1)),
    ("MultiStepLRScheduler", dict(decay_t=[30, 60], decay_rate=0.5, warmup_t=10),
     lambda: lrjax.warmup(lrjax.multistep(0.1, milestones=[29, 59], gamma=0.5), steps=10)),
])
def test_matches_timm_step_schedulers(cls, kwargs, make):
  scheduler = _timm_scheduler()
  want = _timm_run(getattr(scheduler, cls), 0.1, 120, **kwargs)
  np.testing.assert_allclose(make()(jnp.arange(120, dtype=jnp.int32)), want, rtol=1e-6,
                             atol=1e-9)


@pytest.mark.parametrize("noise_type", ["normal", "uniform"])
def test_timm_noise_has_the_same_window_and_bound(noise_type):
  scheduler = _timm_scheduler()
  kw = dict(t_initial=100, noise_range_t=(20, 60), noise_pct=0.3)
  opt = _torch_opt(0.1)
  sched = scheduler.CosineLRScheduler(opt, t_in_epochs=False, **kw)
  sched.noise_type = noise_type  # CosineLRScheduler does not pass noise_type on
  want = []
  for t in range(120):
    sched.step_update(t)
    want.append(opt.param_groups[0]["lr"])
  want = np.array(want)
  clean = lrjax.cosine_decay(0.1, decay_steps=100)
  s = lrjax.with_noise(clean, seed=42, pct=0.3, kind=noise_type, begin_step=20, end_step=60)
  t = jnp.arange(120, dtype=jnp.int32)
  base = np.asarray(clean(t), np.float64)
  got = np.asarray(s(t), np.float64)
  on = (np.arange(120) >= 20) & (np.arange(120) < 60)
  for rates in (want, got):
    np.testing.assert_allclose(rates[~on], base[~on], rtol=1e-5, atol=1e-8)
    rel = rates[on] / base[on] - 1.0
    assert np.all(np.abs(rel) < 0.3 + 1e-6) and np.all(rel != 0)


# --- parity with Hugging Face transformers ----------------------------------------


def _hf_run(name, lr, steps, warmup, total, **kwargs):
  optimization = pytest.importorskip("transformers.optimization")
  opt = _torch_opt(lr)
  sched = optimization.get_scheduler(name, opt, num_warmup_steps=warmup,
                                     num_training_steps=total,
                                     scheduler_specific_kwargs=kwargs or None)
  out = []
  for _ in range(steps):
    out.append(opt.param_groups[0]["lr"])
    opt.step()
    sched.step()
  return np.array(out)


HF = [
    ("linear", 10, 100, {}, lambda: lrjax.warmup_stable_decay(
        0.1, warmup_steps=10, stable_steps=0, decay_steps=90)),
    ("cosine", 10, 100, {}, lambda: lrjax.cosine_decay(0.1, warmup_steps=10, decay_steps=90)),
    ("cosine", 10, 100, dict(num_cycles=1.5),
     lambda: lrjax.cosine_decay(0.1, warmup_steps=10, decay_steps=90, cycles=1.5)),
    ("cosine_with_min_lr", 10, 100, dict(min_lr=1e-3),
     lambda: lrjax.cosine_decay(0.1, warmup_steps=10, decay_steps=90, end_value=1e-3)),
    ("cosine_with_restarts", 8, 72, dict(num_cycles=4),
     lambda: lrjax.warmup(lrjax.cosine_restarts(0.1, cycle_steps=16, cycle_limit=4), steps=8)),
    ("polynomial", 10, 100, dict(lr_end=1e-4, power=2.0),
     lambda: lrjax.warmup(lrjax.polynomial_decay(0.1, decay_steps=90, end_value=1e-4,
                                                 power=2.0), steps=10)),
    ("constant", 0, 100, {}, lambda: lrjax.constant(0.1)),
    ("constant_with_warmup", 10, 100, {}, lambda: lrjax.warmup(lrjax.constant(0.1), steps=10)),
    ("inverse_sqrt", 10, 100, {}, lambda: lrjax.inverse_sqrt(0.1, warmup_steps=10, timescale=10)),
    ("inverse_sqrt", 10, 100, dict(timescale=50),
     lambda: lrjax.inverse_sqrt(0.1, warmup_steps=10, timescale=50)),
    ("cosine_warmup_with_min_lr", 10, 100, dict(min_lr=1e-3),
     lambda: lrjax.warmup(lrjax.cosine_decay(0.1, decay_steps=90, end_value=1e-3), steps=9,
                          init_value=0.1 / 10)),
    ("cosine_warmup_with_min_lr", 10, 100, dict(min_lr_rate=0.05, warmup_lr_rate=0.2,
                                                num_cycles=0.75),
     lambda: lrjax.warmup(lrjax.cosine_decay(0.1, decay_steps=90, end_value=0.005,
                                             cycles=0.75), steps=9, init_value=0.02)),
    ("warmup_stable_decay", 10, 100, dict(num_decay_steps=40),
     lambda: lrjax.warmup_stable_decay(0.1, warmup_steps=10, stable_steps=50, decay_steps=40,
                                       decay_shape="cosine")),
    ("warmup_stable_decay", 10, None, dict(num_stable_steps=30, num_decay_steps=40,
                                           warmup_type="1-sqrt", decay_type="1-sqrt",
                                           min_lr_ratio=0.1),
     lambda: lrjax.warmup_stable_decay(0.1, warmup_steps=10, stable_steps=30, decay_steps=40,
                                       init_value=0.01, end_value=0.01,
                                       warmup_shape="1-sqrt", decay_shape="1-sqrt")),
    ("warmup_stable_decay", 12, None, dict(num_stable_steps=0, num_decay_steps=20,
                                           warmup_type="cosine"),
     lambda: lrjax.warmup_stable_decay(0.1, warmup_steps=12, stable_steps=0, decay_steps=20,
                                       warmup_shape="cosine", decay_shape="cosine")),
]


@pytest.mark.parametrize("name,warmup,total,kwargs,make", HF,
                         ids=[f"{h[0]}-{i}" for i, h in enumerate(HF)])
def test_matches_hugging_face_get_scheduler(name, warmup, total, kwargs, make):
  if name == "constant":
    warmup = None
  end = (total if total is not None else warmup + kwargs["num_stable_steps"]
         + kwargs["num_decay_steps"])
  steps = end + 1  # up to the end: HF's cosines climb back up past it
  if name == "cosine_warmup_with_min_lr":
    steps = end  # one step ahead: its progress is 1 at step N - 1
  if name in ("polynomial", "warmup_stable_decay", "constant", "constant_with_warmup",
              "inverse_sqrt", "cosine_with_restarts", "linear"):
    steps = end + 50  # these hold (or go on) as lrjax does
  want = _hf_run(name, 0.1, steps, warmup, total, **kwargs)
  got = np.asarray(make()(jnp.arange(steps, dtype=jnp.int32)))
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-8)


def test_new_arguments_may_be_traced_under_vmap():
  """The new numbers are leaves: traced, they skip the checks and sweep."""
  t = jnp.int32(30)
  cases = [
      (lambda c: lrjax.cosine_decay(0.1, decay_steps=100, cycles=c), [0.5, 1.0]),
      (lambda k: lrjax.cosine_decay(0.1, decay_steps=100, k_decay=k), [1.0, 2.0]),
      (lambda k: lrjax.polynomial_decay(0.1, decay_steps=100, k_decay=k), [1.0, 3.0]),
      (lambda k: lrjax.cosine_restarts(0.1, cycle_steps=20, k_decay=k), [1.0, 0.5]),
      (lambda x: lrjax.inverse_sqrt(0.1, warmup_steps=10, timescale=x), [10.0, 40.0]),
      (lambda x: lrjax.tanh_decay(0.1, decay_steps=100, lower=x), [-7.0, -2.0]),
      (lambda x: lrjax.with_noise(lrjax.constant(0.1), seed=3, pct=x), [0.1, 0.5]),
  ]
  for make, values in cases:
    swept = jax.vmap(lambda x, make=make: make(x)(t))(jnp.asarray(values, jnp.float32))
    one_by_one = [float(make(v)(t)) for v in values]
    np.testing.assert_allclose(swept, one_by_one, rtol=1e-6)
    assert swept[0] != swept[1]
  limits = jax.vmap(lambda n: lrjax.cosine_restarts(0.1, cycle_steps=10, cycle_limit=n)(25))(
      jnp.array([2, 3]))
  np.testing.assert_allclose(limits, [0.0, 0.05], atol=1e-7)
