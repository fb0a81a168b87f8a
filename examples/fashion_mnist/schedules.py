"""The example's named schedules: what drives the rate (and momentum) of a run.

A `Plan` is a step-indexed learning-rate schedule, optionally a momentum
schedule, and optionally the settings of the plateau transform. `SCHEDULES`
maps each name to a function of (base rate, epochs, steps per epoch); the
reference experiment's schedules are indexed by epoch and go through
`lrjax.per_epoch`; the others count optimizer steps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import lrjax

from configs import default


@dataclasses.dataclass(frozen=True)
class Plan:
  """What drives a run: the rate's schedule, the momentum, plateau settings.

  `momentum` is None (the optimizer's own), a number, or an lrjax schedule:
  SGD's momentum, AdamW's ``b1``; `plateau` is None or the keyword arguments
  of `lrjax.reduce_on_plateau`.
  """

  schedule: lrjax.Schedule
  plateau: dict[str, Any] | None = None
  momentum: float | lrjax.Schedule | None = None


def keras_plateau(lr: float) -> dict[str, Any]:
  """Keras' ``ReduceLROnPlateau(monitor="val_accuracy", mode="max", factor=0.5,
  patience=3, min_delta=1e-4, min_lr=1e-5)`` as `lrjax.reduce_on_plateau` settings.

  Keras reduces once `patience` epochs in a row failed to improve, PyTorch (and
  lrjax) once more than `patience` did: Keras' 3 is lrjax's 2. Keras'
  min_delta is absolute and its min_lr a rate, lrjax's min_scale a factor of
  the schedule's rate.
  """
  return dict(factor=0.5, patience=2, mode="max", threshold=1e-4,
              threshold_mode="abs", min_scale=1e-5 / lr)


def warmup_stable_decay(lr: float, total: int, spe: int) -> Plan:
  """Warmup for an epoch (at most a tenth of the run), flat, then a "1-sqrt"
  cooldown to 0 over the last fifth of the run."""
  warmup, decay = min(spe, total // 10), max(1, total // 5)
  return Plan(lrjax.warmup_stable_decay(
      lr, warmup_steps=warmup, stable_steps=total - warmup - decay,
      decay_steps=decay, decay_shape="1-sqrt"))


# name -> (base rate, epochs, steps per epoch) -> Plan.
SCHEDULES: dict[str, Callable[[float, int, int], Plan]] = {
    # The reference experiment ("Dive into Deep Learning", 12.11), by epoch:
    "none": lambda lr, epochs, spe: Plan(lrjax.constant(lr)),
    "sqrt": lambda lr, epochs, spe: Plan(
        lrjax.per_epoch(lrjax.inverse_sqrt(0.1), steps_per_epoch=spe)),
    "multistep": lambda lr, epochs, spe: Plan(lrjax.per_epoch(
        lrjax.multistep(lr, milestones=[15, 30], gamma=0.5), steps_per_epoch=spe)),
    "cosine": lambda lr, epochs, spe: Plan(lrjax.per_epoch(
        lrjax.cosine_decay(lr, decay_steps=20, end_value=0.01), steps_per_epoch=spe)),
    "plateau": lambda lr, epochs, spe: Plan(lrjax.constant(lr), keras_plateau(lr)),
    # By step: 5 epochs of warmup, then 15 of cosine decay (0.01 from epoch 20).
    "warmup-cosine": lambda lr, epochs, spe: Plan(lrjax.cosine_decay(
        lr, warmup_steps=5 * spe, decay_steps=15 * spe, end_value=0.01)),
    "exponential": lambda lr, epochs, spe: Plan(
        lrjax.exponential_decay(lr, decay_steps=spe, decay_rate=0.9)),
    "one-cycle": lambda lr, epochs, spe: Plan(
        lrjax.one_cycle(peak_value=lr, total_steps=epochs * spe)),
    # PyTorch's OneCycleLR with cycle_momentum=True: momentum 0.95 -> 0.85 -> 0.95.
    "one-cycle-momentum": lambda lr, epochs, spe: Plan(
        lrjax.one_cycle(peak_value=lr, total_steps=epochs * spe),
        momentum=lrjax.one_cycle_momentum(total_steps=epochs * spe)),
    "wsd": lambda lr, epochs, spe: warmup_stable_decay(lr, epochs * spe, spe),
}


def make_plan(config: default.Config, steps_per_epoch: int) -> Plan:
  """The config's schedule (and momentum) as a `Plan`.

  Raises:
    ValueError: if the name is unknown, the dict is not an lrjax schedule, or
      ``config.momentum`` is set for a schedule that cycles its own momentum.
  """
  s = config.schedule
  if isinstance(s, dict):
    plan = Plan(lrjax.from_dict(s))
  elif s in SCHEDULES:
    plan = SCHEDULES[s](config.learning_rate, config.epochs, steps_per_epoch)
  else:
    raise ValueError(f"unknown schedule {s!r}; known: {', '.join(SCHEDULES)}, or an lrjax JSON dict")
  if config.momentum:
    if plan.momentum is not None:
      raise ValueError(f"momentum: schedule {s!r} sets its own momentum, got {config.momentum!r}")
    plan = dataclasses.replace(plan, momentum=config.momentum)
  return plan


def label(schedule: str | dict[str, Any]) -> str:
  """A name for plots and directories: the schedule's name or lrjax type."""
  return schedule if isinstance(schedule, str) else str(schedule.get("type", "custom"))
