"""Float64 NumPy references, written from the papers and the PyTorch, Keras
and TensorFlow documentation (never from lrjax). Each takes an int64 array of
steps and returns float64 rates."""

from __future__ import annotations

import math

import numpy as np


def constant(t, value):
  return np.full(np.shape(t), float(value))


def step_lr(t, init_value, step_size, gamma):
  """torch StepLR: lr = base_lr * gamma ** (epoch // step_size)."""
  return init_value * gamma ** (np.asarray(t) // step_size).astype(np.float64)


def chained(t, *refs):
  """torch ChainedScheduler: the product of the factors."""
  out = np.ones(np.shape(t))
  for r in refs:
    out = out * r(t)
  return out


def linear_warmup_then(t, steps, init_value, after, shape="linear"):
  """Goyal et al. gradual warmup to after(0), then after(t - steps)."""
  t = np.asarray(t)
  frac = np.clip(t / max(steps, 1), 0.0, 1.0)
  if shape == "cosine":
    frac = (1 - np.cos(math.pi * frac)) / 2
  target = after(np.zeros_like(t))
  ramp = init_value + (target - init_value) * frac
  return np.where(t >= steps, after(np.maximum(t - steps, 0)), ramp)


def sequential(t, refs, boundaries):
  """torch SequentialLR / optax join_schedules: each counted from its start."""
  t = np.asarray(t)
  starts = [0, *boundaries]
  idx = np.searchsorted(np.asarray(boundaries), t, side="right")
  out = np.empty(t.shape)
  for i, (r, s) in enumerate(zip(refs, starts)):
    m = idx == i
    out[m] = r(t[m] - s)
  return out



def cooldown(t, base, start, decay_steps, end=0.0, shape="1-sqrt"):
  """A cooldown from the rate in effect (Hägele et al. 2024; MiniCPM; the
  decay types of Hugging Face get_wsd_schedule): base(t) before start; then,
  with v0 = base(start) and p = (t - start) / decay_steps, end + (v0 - end)
  f(p) with f(p) = 1 - p ("linear"), (1 + cos(pi p)) / 2 ("cosine") or 1 -
  sqrt(p) ("1-sqrt"); end from start + decay_steps on."""
  t = np.asarray(t, np.int64)
  v0 = float(base(np.array([start], np.int64))[0])
  p = np.clip((t - start) / decay_steps, 0.0, 1.0)
  f = {"linear": 1.0 - p, "cosine": (1.0 + np.cos(np.pi * p)) / 2,
       "1-sqrt": 1.0 - np.sqrt(p)}[shape]
  return np.where(t < start, base(t), end + (v0 - end) * f)

# --- _decay: multistep, piecewise, exponential, inverse-time, polynomial,
# linear, inverse sqrt -------------------------------------------------------


def multistep_lr(t, init_value, milestones, gamma):
  """torch MultiStepLR closed form: base_lr * gamma ** bisect_right(milestones, epoch)."""
  k = np.searchsorted(np.sort(np.asarray(milestones)), np.asarray(t), side="right")
  return init_value * gamma ** k.astype(np.float64)


def piecewise_constant(t, boundaries, values):
  """optax piecewise_constant_schedule's convention: values[i] on [b[i-1], b[i])."""
  idx = np.searchsorted(np.asarray(boundaries), np.asarray(t), side="right")
  return np.asarray(values, np.float64)[idx]


def exponential_decay(t, init_value, decay_steps, decay_rate, staircase=False,
                      end_value=None):
  """TF exponential_decay: lr * decay_rate ** (global_step / decay_steps),
  the division floored when staircase; optax's end_value clip (a floor when
  decay_rate < 1, a ceiling when > 1)."""
  t = np.asarray(t)
  p = (t // decay_steps).astype(np.float64) if staircase else t / decay_steps
  with np.errstate(over="ignore", under="ignore"):
    out = init_value * np.power(float(decay_rate), p)
  if end_value is not None and decay_rate < 1:
    out = np.maximum(out, end_value)
  elif end_value is not None and decay_rate > 1:
    out = np.minimum(out, end_value)
  return out


def exponential_lr(t, init_value, gamma):
  """torch ExponentialLR closed form: base_lr * gamma ** last_epoch."""
  with np.errstate(under="ignore"):
    return init_value * np.power(float(gamma), np.asarray(t, np.float64))


def inverse_time_decay(t, init_value, decay_steps, decay_rate, staircase=False):
  """Keras InverseTimeDecay: lr / (1 + decay_rate * step / decay_steps),
  the division floored when staircase."""
  t = np.asarray(t)
  p = (t // decay_steps).astype(np.float64) if staircase else t / decay_steps
  return init_value / (1.0 + decay_rate * p)


def polynomial_decay(t, init_value, decay_steps, end_value, power, cycle=False):
  """Keras PolynomialDecay.

  cycle: decay_steps *= ceil(step / decay_steps) (1 at step 0); else
  step = min(step, decay_steps); then
  (init - end) * (1 - step / decay_steps) ** power + end. The 1 - step /
  horizon is taken as (horizon - step) / horizon in int64, so the reference
  stays exact at steps near 2**40.
  """
  t = np.asarray(t, np.int64)
  if cycle:
    mult = np.where(t == 0, 1, -(-t // decay_steps))
    horizon = mult * decay_steps
    left = horizon - t
  else:
    horizon = np.full_like(t, decay_steps)
    left = decay_steps - np.minimum(t, decay_steps)
  frac = left.astype(np.float64) / horizon.astype(np.float64)
  return (init_value - end_value) * frac**power + end_value


def polynomial_lr(t, init_value, total_iters, power):
  """torch PolynomialLR closed form: base_lr * (1 - min(T, t) / T) ** power."""
  t = np.asarray(t)
  return init_value * (1.0 - np.minimum(total_iters, t) / total_iters) ** power


def linear_lr(t, base_lr, start_factor, end_factor, total_iters):
  """torch LinearLR closed form:
  base_lr * (start + (end - start) * min(total_iters, t) / total_iters)."""
  t = np.asarray(t)
  return base_lr * (start_factor + (end_factor - start_factor)
                    * np.minimum(total_iters, t) / total_iters)


def inverse_sqrt(t, lr, warmup_updates, warmup_init_lr=0.0):
  """warmup_updates == 0: d2l SquareRootScheduler, lr * (t + 1) ** -0.5.

  Otherwise fairseq InverseSquareRootSchedule: lr_step = (lr -
  warmup_init_lr) / warmup_updates; lr = warmup_init_lr + update_num *
  lr_step during warmup; then decay_factor = lr * sqrt(warmup_updates),
  lr = decay_factor / sqrt(update_num).
  """
  t = np.asarray(t, np.float64)
  if warmup_updates == 0:
    return lr * (t + 1.0) ** -0.5
  lr_step = (lr - warmup_init_lr) / warmup_updates
  decay_factor = lr * math.sqrt(warmup_updates)
  return np.where(t < warmup_updates, warmup_init_lr + t * lr_step,
                  decay_factor / np.sqrt(np.maximum(t, 1.0)))


def optax_piecewise_interpolate(t, interpolate_type, init_value, boundaries_and_scales):
  """optax piecewise_interpolate_schedule: values = cumprod((init,) + scales)
  at bounds (0,) + sorted boundaries; in [b_i, b_{i+1}) pct = (t - b_i) /
  max(b_{i+1} - b_i, 1), linear (end - start) * pct + start or cosine end +
  (start - end) / 2 * (cos(pi pct) + 1); values[-1] from the last bound on."""
  t = np.asarray(t, np.int64)
  bounds, scales = zip(*sorted(boundaries_and_scales.items()))
  bounds = np.array((0,) + bounds, np.int64)
  values = np.cumprod(np.array((init_value,) + scales, np.float64))
  out = np.full(t.shape, values[-1])
  for i in range(len(bounds) - 1):
    m = (bounds[i] <= t) & (t < bounds[i + 1])
    pct = (t[m] - bounds[i]) / max(bounds[i + 1] - bounds[i], 1)
    start, end = values[i], values[i + 1]
    if interpolate_type == "linear":
      out[m] = (end - start) * pct + start
    else:
      out[m] = end + (start - end) / 2.0 * (np.cos(np.pi * pct) + 1)
  return out


# --- timm and Hugging Face (issue 14): ported from timm/scheduler/*.py and
# transformers/optimization.py, one step at a time ---------------------------


def timm_cycles(t, t_initial, cycle_mul):
  """timm's cycle bookkeeping (cosine_lr.py, tanh_lr.py, poly_lr.py):
  (i, t_i, t_curr) of step t."""
  if cycle_mul != 1:
    i = math.floor(math.log(1 - t / t_initial * (1 - cycle_mul), cycle_mul))
    t_i = cycle_mul**i * t_initial
    t_curr = t - (1 - cycle_mul**i) / (1 - cycle_mul) * t_initial
  else:
    i = t // t_initial
    t_i = t_initial
    t_curr = t - (t_initial * i)
  return i, t_i, t_curr


def _timm(t, base_lr, warmup_t, warmup_lr_init, warmup_prefix, warmup_target, curve):
  """timm's _get_lr shell: the linear warmup warmup_lr_init + t * (target -
  warmup_lr_init) / warmup_t below warmup_t, else curve(t - warmup_t if
  warmup_prefix else t)."""

  def one(e):
    if e < warmup_t:
      return warmup_lr_init + e * (warmup_target - warmup_lr_init) / warmup_t
    return curve(e - warmup_t if warmup_prefix else e)

  return _per_step(t, one)


def timm_cosine(t, base_lr, t_initial, lr_min=0.0, cycle_mul=1.0, cycle_decay=1.0,
                cycle_limit=1, warmup_t=0, warmup_lr_init=0.0, warmup_prefix=False,
                k_decay=1.0):
  """timm CosineLRScheduler._get_lr: in cycle i < cycle_limit, lr_min + 0.5 *
  (base_lr * cycle_decay**i - lr_min) * (1 + cos(pi t_curr**k / t_i**k));
  lr_min after."""

  def curve(e):
    i, t_i, t_curr = timm_cycles(e, t_initial, cycle_mul)
    if i >= cycle_limit:
      return lr_min
    lr_max = base_lr * cycle_decay**i
    return lr_min + 0.5 * (lr_max - lr_min) * (
        1 + math.cos(math.pi * t_curr**k_decay / t_i**k_decay))

  return _timm(t, base_lr, warmup_t, warmup_lr_init, warmup_prefix, base_lr, curve)


def timm_tanh(t, base_lr, t_initial, lb=-7.0, ub=3.0, lr_min=0.0, cycle_mul=1.0,
              cycle_decay=1.0, cycle_limit=1):
  """timm TanhLRScheduler._get_lr (no warmup): in cycle i < cycle_limit,
  tr = t_curr / t_i, lr_min + 0.5 * (base_lr * cycle_decay**i - lr_min) *
  (1 - tanh(lb * (1 - tr) + ub * tr)); lr_min after."""

  def curve(e):
    i, t_i, t_curr = timm_cycles(e, t_initial, cycle_mul)
    if i >= cycle_limit:
      return lr_min
    tr = t_curr / t_i
    lr_max = base_lr * cycle_decay**i
    return lr_min + 0.5 * (lr_max - lr_min) * (1 - math.tanh(lb * (1.0 - tr) + ub * tr))

  return _timm(t, base_lr, 0, 0.0, False, base_lr, curve)


def timm_poly(t, base_lr, t_initial, power=0.5, lr_min=0.0, cycle_mul=1.0,
              cycle_decay=1.0, cycle_limit=1, k_decay=1.0):
  """timm PolyLRScheduler._get_lr (no warmup): lr_min + (base_lr *
  cycle_decay**i - lr_min) * (1 - t_curr**k / t_i**k)**power in cycle i <
  cycle_limit; lr_min after."""

  def curve(e):
    i, t_i, t_curr = timm_cycles(e, t_initial, cycle_mul)
    if i >= cycle_limit:
      return lr_min
    lr_max = base_lr * cycle_decay**i
    return lr_min + (lr_max - lr_min) * (1 - t_curr**k_decay / t_i**k_decay)**power

  return _timm(t, base_lr, 0, 0.0, False, base_lr, curve)


def hf_cosine(t, lr, num_warmup_steps, num_training_steps, num_cycles=0.5,
              min_lr_rate=0.0):
  """transformers _get_cosine_schedule_with_warmup_lr_lambda (with
  min_lr_rate: get_cosine_with_min_lr_schedule_with_warmup) times lr: t / W
  below W, else max(0, f (1 - r) + r), f = 0.5 (1 + cos(pi c 2 progress)),
  progress = (t - W) / max(1, N - W)."""

  def one(e):
    if e < num_warmup_steps:
      return lr * float(e) / float(max(1, num_warmup_steps))
    progress = float(e - num_warmup_steps) / float(max(1, num_training_steps - num_warmup_steps))
    factor = 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress))
    return lr * max(0.0, factor * (1 - min_lr_rate) + min_lr_rate)

  return _per_step(t, one)


def hf_hard_restarts(t, lr, num_warmup_steps, num_training_steps, num_cycles=1):
  """transformers _get_cosine_with_hard_restarts_schedule_with_warmup_lr_lambda
  times lr: 0 from progress 1 on, else 0.5 (1 + cos(pi ((c progress) % 1)))."""

  def one(e):
    if e < num_warmup_steps:
      return lr * float(e) / float(max(1, num_warmup_steps))
    progress = float(e - num_warmup_steps) / float(max(1, num_training_steps - num_warmup_steps))
    if progress >= 1.0:
      return 0.0
    return lr * max(0.0, 0.5 * (1.0 + math.cos(math.pi * ((float(num_cycles) * progress) % 1.0))))

  return _per_step(t, one)


def hf_linear(t, lr, num_warmup_steps, num_training_steps):
  """transformers _get_linear_schedule_with_warmup_lr_lambda times lr."""

  def one(e):
    if e < num_warmup_steps:
      return lr * float(e) / float(max(1, num_warmup_steps))
    return lr * max(0.0, float(num_training_steps - e)
                    / float(max(1, num_training_steps - num_warmup_steps)))

  return _per_step(t, one)


def hf_constant_with_warmup(t, lr, num_warmup_steps):
  """transformers _get_constant_schedule_with_warmup_lr_lambda times lr."""

  def one(e):
    if e < num_warmup_steps:
      return lr * float(e) / float(max(1.0, num_warmup_steps))
    return lr

  return _per_step(t, one)


def hf_polynomial(t, lr_init, num_warmup_steps, num_training_steps, lr_end=1e-7, power=1.0):
  """transformers _get_polynomial_decay_schedule_with_warmup_lr_lambda times
  lr_init: lr_end past N, else (lr_init - lr_end) * (1 - (t - W) / (N - W))
  ** power + lr_end."""

  def one(e):
    if e < num_warmup_steps:
      return lr_init * float(e) / float(max(1, num_warmup_steps))
    if e > num_training_steps:
      return lr_end
    pct_remaining = 1 - (e - num_warmup_steps) / (num_training_steps - num_warmup_steps)
    return (lr_init - lr_end) * pct_remaining**power + lr_end

  return _per_step(t, one)


def hf_inverse_sqrt(t, lr, num_warmup_steps, timescale=None):
  """transformers get_inverse_sqrt_schedule times lr: timescale defaults to
  num_warmup_steps or 10_000; t / W below W, else 1 / sqrt((t + timescale -
  W) / timescale)."""
  if timescale is None:
    timescale = num_warmup_steps or 10_000

  def one(e):
    if e < num_warmup_steps:
      return lr * float(e) / float(max(1, num_warmup_steps))
    return lr / math.sqrt((e + timescale - num_warmup_steps) / timescale)

  return _per_step(t, one)


def hf_wsd(t, lr, num_warmup_steps, num_stable_steps, num_decay_steps,
           warmup_type="linear", decay_type="cosine", min_lr_ratio=0.0):
  """transformers _get_wsd_scheduler_lambda (num_cycles 0.5) times lr."""

  def one(e):
    if e < num_warmup_steps:
      progress = float(e) / float(max(1, num_warmup_steps))
      if warmup_type == "linear":
        factor = progress
      elif warmup_type == "cosine":
        factor = 0.5 * (1.0 - math.cos(math.pi * progress))
      else:
        factor = 1.0 - math.sqrt(1.0 - progress)
      return lr * max(0.0, factor * (1.0 - min_lr_ratio) + min_lr_ratio)
    if e < num_warmup_steps + num_stable_steps:
      return lr
    if e < num_warmup_steps + num_stable_steps + num_decay_steps:
      progress = float(e - num_warmup_steps - num_stable_steps) / float(max(1, num_decay_steps))
      if decay_type == "linear":
        factor = 1.0 - progress
      elif decay_type == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress))
      else:
        factor = 1.0 - math.sqrt(progress)
      return lr * max(0.0, factor * (1.0 - min_lr_ratio) + min_lr_ratio)
    return lr * min_lr_ratio

  return _per_step(t, one)


def documented_noise(t, seed, pct, std=1.0, kind="normal"):
  """lrjax.with_noise's documented draw (its contract, not its code): n_t from
  jax.random with key fold_in(fold_in(key(seed), lo), hi), lo and hi the low
  and high 32 bits of t; a truncated normal std * N(0, 1) on (-pct/std,
  pct/std) or uniform(-1, 1) * pct, as float32, returned as float64."""
  import jax  # only here: the other references are NumPy

  t = np.asarray(t, np.int64)
  out = np.empty(t.shape)
  base = jax.random.key(seed)
  for idx, e in np.ndenumerate(t):
    key = jax.random.fold_in(jax.random.fold_in(base, np.uint32(int(e) & 0xFFFFFFFF)),
                             np.uint32(int(e) >> 32))
    if kind == "normal":
      p = np.float32(pct) / np.float32(std)
      n = np.float32(jax.random.truncated_normal(key, -p, p, (), np.float32)) * np.float32(std)
    else:
      n = np.float32(pct) * np.float32(jax.random.uniform(key, (), np.float32, -1.0, 1.0))
    out[idx] = float(n)
  return out


def noisy(t, base, seed, pct, std=1.0, kind="normal", begin=0, end=None):
  """base(t) * (1 + n_t) on [begin, end), base(t) elsewhere (timm _add_noise:
  lr + lr * noise)."""
  t = np.asarray(t, np.int64)
  on = (t >= begin) & ((t < end) if end is not None else True)
  n = np.zeros(t.shape)
  if np.any(on):
    n[on] = documented_noise(t[on], seed, pct, std, kind)
  b = base(t)
  return b + b * n


# --- _cosine and _cyclic: cosine decay, SGDR, WSD, REX, CyclicLR, OneCycleLR --


def optax_warmup_cosine(t, init_value, peak_value, warmup_steps, decay_steps,
                        end_value=0.0, exponent=1.0):
  """optax warmup_cosine_decay_schedule: a linear warmup from init_value to
  peak_value over warmup_steps, then cosine_decay_schedule(peak_value,
  decay_steps - warmup_steps, alpha=end_value / peak_value, exponent) from its
  own step 0: count = min(count, D), c = (1 + cos(pi count / D)) / 2,
  peak * ((1 - alpha) c**exponent + alpha). warmup_steps == 0 is the cosine
  alone (optax's cosine_decay_schedule)."""
  t = np.asarray(t, np.float64)
  d = decay_steps - warmup_steps
  alpha = end_value / peak_value
  count = np.minimum(np.maximum(t - warmup_steps, 0.0), d)
  c = 0.5 * (1 + np.cos(np.pi * count / d))
  decayed = peak_value * ((1 - alpha) * c**exponent + alpha)
  if warmup_steps == 0:
    return decayed
  ramp = init_value + (peak_value - init_value) * t / warmup_steps
  return np.where(t < warmup_steps, ramp, decayed)


def _per_step(t, fn):
  """fn(int step) -> float, over an int array (exact Python int arithmetic)."""
  t = np.asarray(t, np.int64)
  return np.array([fn(int(e)) for e in t.ravel()], np.float64).reshape(t.shape)


def cosine_annealing(t, base_lr, t_max, eta_min=0.0):
  """torch CosineAnnealingLR closed form (`_get_closed_form_lr`), t <= T_max:
  eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2."""
  t = np.asarray(t, np.float64)
  return eta_min + (base_lr - eta_min) * (1 + np.cos(np.pi * t / t_max)) / 2


def d2l_cosine(t, max_update, base_lr=0.01, final_lr=0.0, warmup_steps=0,
               warmup_begin_lr=0.0):
  """d2l CosineScheduler (Dive into Deep Learning, section 12.11): linear
  warmup from warmup_begin_lr, then the cosine from base_lr to final_lr over
  max_steps = max_update - warmup_steps; past max_update it returns the last
  value it computed, the one at max_update (final_lr)."""
  max_steps = max_update - warmup_steps

  def one(epoch):
    if epoch < warmup_steps:
      increase = (base_lr - warmup_begin_lr) * float(epoch) / float(warmup_steps)
      return warmup_begin_lr + increase
    epoch = min(epoch, max_update)
    return final_lr + (base_lr - final_lr) * (
        1 + math.cos(math.pi * (epoch - warmup_steps) / max_steps)) / 2

  return _per_step(t, one)


def sgdr(t, eta_max, t_0, t_mult=1.0, m_mul=1.0, eta_min=0.0):
  """SGDR (Loshchilov & Hutter 2017) with torch CosineAnnealingWarmRestarts'
  bookkeeping: T_cur counts steps since the restart; when T_cur >= T_i,
  T_cur -= T_i and T_i *= T_mult (T_mult == 1: T_cur = t mod T_0, torch's
  closed form). Keras CosineDecayRestarts' m_mul scales the i-th cycle's
  amplitude: eta_min + (eta_max - eta_min) * m_mul**i * (1 + cos(pi T_cur /
  T_i)) / 2, with eta_min = alpha * eta_max."""

  def one(e):
    if t_mult == 1:
      i, t_cur, t_i = e // t_0, e % t_0, t_0
    else:
      i, t_cur, t_i = 0, float(e), float(t_0)
      while t_cur >= t_i:
        t_cur -= t_i
        t_i *= t_mult
        i += 1
    return eta_min + (eta_max - eta_min) * m_mul**i * (
        1 + math.cos(math.pi * t_cur / t_i)) / 2

  return _per_step(t, one)


def cyclic_lr(t, base_lr, max_lr, step_size_up, step_size_down=None,
              mode="triangular", gamma=1.0):
  """torch CyclicLR (Smith 2017): cycle = floor(1 + t / total_size),
  x = 1 + t / total_size - cycle; scale = x / step_ratio while x <= step_ratio,
  else (x - 1) / (step_ratio - 1); lr = base_lr + (max_lr - base_lr) * scale *
  scale_fn, scale_fn = 1, 1 / 2**(cycle - 1) (of the cycle) or gamma**t (of
  the iteration). The cycle and x are taken with integer arithmetic (x =
  (t mod total) / total) so that far steps keep float64 accuracy."""
  up = step_size_up
  down = step_size_up if step_size_down is None else step_size_down
  total = up + down

  def one(e):
    cycle = 1 + e // total  # == floor(1 + e / total)
    pos = e - (cycle - 1) * total  # x = pos / total
    scale = pos / up if pos <= up else (total - pos) / down
    if mode == "triangular":
      factor = 1.0
    elif mode == "triangular2":
      # 2.0 ** (cycle - 1) overflows a Python float past ~1024 (the factor
      # is 0.0 in float64 long before).
      factor = 1 / (2.0 ** (cycle - 1)) if cycle < 2000 else 0.0
    else:
      factor = gamma**e
    return base_lr + (max_lr - base_lr) * scale * factor

  return _per_step(t, one)


def one_cycle_phases(total_steps, pct_start, three_phase):
  """torch OneCycleLR's phase table: [(end_step, start_lr, end_lr)]."""
  if three_phase:
    return [(float(pct_start * total_steps) - 1, "initial_lr", "max_lr"),
            (float(2 * pct_start * total_steps) - 2, "max_lr", "initial_lr"),
            (total_steps - 1, "initial_lr", "min_lr")]
  return [(float(pct_start * total_steps) - 1, "initial_lr", "max_lr"),
          (total_steps - 1, "max_lr", "min_lr")]


def one_cycle_anneal(anneal_strategy, start, end, pct):
  """torch OneCycleLR's `_annealing_cos` / `_annealing_linear`."""
  if anneal_strategy == "cos":
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
  return (end - start) * pct + start


def one_cycle_lr(t, max_lr, total_steps, pct_start=0.3, anneal_strategy="cos",
                 div_factor=25.0, final_div_factor=1e4, three_phase=False):
  """torch OneCycleLR (Smith & Topin 2019) at step min(t, total_steps - 1):
  the first phase whose end_step the step has not passed (or the last one),
  pct = (step - start) / (end - start), annealed by cos: end + (start - end)
  / 2 * (cos(pi pct) + 1), or linear: (end - start) * pct + start."""
  group = {"initial_lr": max_lr / div_factor, "max_lr": max_lr}
  group["min_lr"] = group["initial_lr"] / final_div_factor
  phases = one_cycle_phases(total_steps, pct_start, three_phase)

  def one(e):
    step_num = min(e, total_steps - 1)
    start_step = 0.0
    for i, (end_step, a, b) in enumerate(phases):
      if step_num <= end_step or i == len(phases) - 1:
        pct = (step_num - start_step) / (end_step - start_step)
        return one_cycle_anneal(anneal_strategy, group[a], group[b], pct)
      start_step = end_step
    raise AssertionError("unreachable")

  return _per_step(t, one)


def wsd(t, peak, warmup_steps, stable_steps, decay_steps, init=0.0, end=0.0,
        shape="linear"):
  """Warmup-stable-decay (Hu et al. 2024; Hägele et al. 2024): linear warmup
  from init, flat at peak, then over decay_steps with progress p in [0, 1]:
  linear peak - (peak - end) p, cosine end + (peak - end)(1 + cos(pi p)) / 2,
  1-sqrt peak - (peak - end) sqrt(p); then end."""
  t = np.asarray(t, np.int64)
  ramp = init + (peak - init) * t.astype(np.float64) / max(warmup_steps, 1)
  p = np.clip((t - warmup_steps - stable_steps) / decay_steps, 0.0, 1.0)
  if shape == "linear":
    decayed = peak - (peak - end) * p
  elif shape == "cosine":
    decayed = end + (peak - end) * (1 + np.cos(np.pi * p)) / 2
  else:
    decayed = peak - (peak - end) * np.sqrt(p)
  return np.where(t < warmup_steps, ramp, decayed)


def rex(t, peak, total_steps, end=0.0, warmup_steps=0, warmup_init=0.0):
  """REX (Chen, Wolfe & Kyrillidis 2022): factor (1 - z) / (1/2 + (1 - z)/2),
  z the decay progress over the total_steps - warmup_steps after a linear
  warmup from warmup_init to peak; from peak to end."""
  t = np.asarray(t, np.int64)
  ramp = warmup_init + (peak - warmup_init) * t.astype(np.float64) / max(warmup_steps, 1)
  z = np.clip((t - warmup_steps) / (total_steps - warmup_steps), 0.0, 1.0)
  decayed = end + (peak - end) * (1 - z) / (0.5 + 0.5 * (1 - z))
  return np.where(t < warmup_steps, ramp, decayed)


# --- momentum curves (issue 10): the momentum (or Adam's beta1) that torch's
# CyclicLR / OneCycleLR write into param_group["momentum"] each step with
# cycle_momentum=True --------------------------------------------------------


def cyclic_momentum(t, base_momentum, max_momentum, step_size_up,
                    step_size_down=None, mode="triangular", gamma=1.0):
  """torch CyclicLR's momentum: max_momentum - (max_momentum - base_momentum)
  * scale * scale_fn, with cyclic_lr's scale and scale_fn: the rate's formula
  with the band reversed (base_lr -> max_momentum, max_lr -> base_momentum)."""
  return cyclic_lr(t, max_momentum, base_momentum, step_size_up, step_size_down,
                   mode, gamma)


def one_cycle_momentum(t, total_steps, base_momentum=0.85, max_momentum=0.95,
                       pct_start=0.3, anneal_strategy="cos", three_phase=False):
  """torch OneCycleLR's momentum at step min(t, total_steps - 1): the phase
  table's (start_momentum, end_momentum), max -> base, base -> max (and, with
  three_phase, max -> max), annealed over the same phases as the rate."""
  m = {"base": base_momentum, "max": max_momentum}
  ends = [e for e, _, _ in one_cycle_phases(total_steps, pct_start, three_phase)]
  table = [("max", "base"), ("base", "max"), ("max", "max")][:len(ends)]

  def one(e):
    step_num = min(e, total_steps - 1)
    start_step = 0.0
    for i, (end_step, (a, b)) in enumerate(zip(ends, table)):
      if step_num <= end_step or i == len(ends) - 1:
        pct = (step_num - start_step) / (end_step - start_step)
        return one_cycle_anneal(anneal_strategy, m[a], m[b], pct)
      start_step = end_step
    raise AssertionError("unreachable")

  return _per_step(t, one)
