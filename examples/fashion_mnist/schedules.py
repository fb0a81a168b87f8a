"""The example's named schedules (`SCHEDULES`) and the `Plan` a run follows."""

import dataclasses
from typing import Any

import lrjax

from configs import default


@dataclasses.dataclass(frozen=True)
class Plan:
  """What drives a run: the rate's schedule, the plateau transform's keyword
  arguments (or None), and SGD's momentum or AdamW's ``b1`` (None: the
  optimizer's own; a number; or an lrjax schedule)."""

  schedule: lrjax.Schedule
  plateau: dict[str, Any] | None = None
  momentum: float | lrjax.Schedule | None = None


def keras_plateau(lr: float) -> dict[str, Any]:
  """Keras' ``ReduceLROnPlateau(monitor="val_accuracy", mode="max", factor=0.5,
  patience=3, min_delta=1e-4, min_lr=1e-5)`` as `lrjax.reduce_on_plateau` settings.

  Keras reduces after `patience` bad epochs, lrjax (as PyTorch) after more than
  `patience`: Keras' 3 is lrjax's 2. Keras' min_delta is absolute and its
  min_lr a rate, lrjax's min_scale a factor of the schedule's rate.
  """
  return dict(factor=0.5, patience=2, mode="max", threshold=1e-4,
              threshold_mode="abs", min_scale=1e-5 / lr)


def wsd(lr: float, epochs: int, spe: int) -> Plan:
  """Warmup for an epoch (at most a tenth of the run), flat, then a "1-sqrt"
  cooldown to 0 over the last fifth of the run."""
  total = epochs * spe
  warmup, decay = min(spe, total // 10), max(1, total // 5)
  return Plan(lrjax.warmup_stable_decay(
      lr, warmup_steps=warmup, stable_steps=total - warmup - decay,
      decay_steps=decay, decay_shape="1-sqrt"))


# name -> function of (base rate, epochs, steps per epoch) -> Plan.
SCHEDULES = {
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
    "wsd": wsd,
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
