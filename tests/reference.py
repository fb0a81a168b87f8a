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
