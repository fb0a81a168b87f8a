"""The one registry of schedule cases that every generic test runs over.

A case builds an lrjax schedule and names its float64 reference (from
`reference.py`) and the steps where the schedule changes phase: the generic
tests evaluate each such point -1/0/+1, step 0, the end and far past it.
Families append their cases below, one block each.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

import lrjax
import reference as ref


@dataclasses.dataclass(frozen=True)
class Case:
  id: str
  make: Callable[[], lrjax.Schedule]
  ref: Callable[[np.ndarray], np.ndarray]
  points: tuple[int, ...]  # phase boundaries (each tested at -1, 0, +1)
  end: int  # the last step at which the rate still changes

  def grid(self) -> np.ndarray:
    pts = {0, 1, self.end, self.end + 1, 2 * self.end + 7, 10**6 + 3}
    for p in self.points:
      pts.update({p - 1, p, p + 1})
    return np.array(sorted(p for p in pts if p >= 0), dtype=np.int64)


CASES: list[Case] = []

# --- _decay (constant, step_decay) and _combine ------------------------------
CASES += [
    Case("constant", lambda: lrjax.constant(0.3),
         lambda t: ref.constant(t, 0.3), (), 1),
    Case("step_decay", lambda: lrjax.step_decay(0.1, step_size=30, gamma=0.1),
         lambda t: ref.step_lr(t, 0.1, 30, 0.1), (30, 60, 90), 90),
    Case("step_decay_gamma_gt1",
         lambda: lrjax.step_decay(0.1, step_size=7, gamma=1.0),
         lambda t: ref.step_lr(t, 0.1, 7, 1.0), (7,), 7),
    Case("product",
         lambda: lrjax.step_decay(0.2, step_size=10, gamma=0.5)
         * lrjax.step_decay(1.0, step_size=4, gamma=0.9),
         lambda t: ref.chained(t, lambda u: ref.step_lr(u, 0.2, 10, 0.5),
                               lambda u: ref.step_lr(u, 1.0, 4, 0.9)),
         (4, 8, 10, 12, 20), 40),
    Case("product_scalar", lambda: 0.5 * lrjax.step_decay(0.2, step_size=10, gamma=0.5),
         lambda t: 0.5 * ref.step_lr(t, 0.2, 10, 0.5), (10, 20), 20),
    Case("warmup_linear",
         lambda: lrjax.warmup(lrjax.step_decay(0.4, step_size=10, gamma=0.5),
                              steps=8, init_value=0.01),
         lambda t: ref.linear_warmup_then(
             t, 8, 0.01, lambda u: ref.step_lr(u, 0.4, 10, 0.5)), (8, 18, 28), 28),
    Case("warmup_cosine",
         lambda: lrjax.warmup(lrjax.constant(0.3), steps=5, shape="cosine"),
         lambda t: ref.linear_warmup_then(
             t, 5, 0.0, lambda u: ref.constant(u, 0.3), shape="cosine"), (5,), 5),
    Case("sequence",
         lambda: lrjax.sequence(
             [lrjax.constant(0.1), lrjax.step_decay(0.3, step_size=4, gamma=0.5),
              lrjax.constant(0.01)], boundaries=[5, 17]),
         lambda t: ref.sequential(
             t, [lambda u: ref.constant(u, 0.1), lambda u: ref.step_lr(u, 0.3, 4, 0.5),
                 lambda u: ref.constant(u, 0.01)], [5, 17]), (5, 9, 13, 17), 17),
    Case("per_epoch",
         lambda: lrjax.per_epoch(lrjax.step_decay(0.3, step_size=2, gamma=0.5),
                                 steps_per_epoch=469),
         lambda t: ref.step_lr(np.asarray(t) // 469, 0.3, 2, 0.5),
         (938, 1876), 1876),
]
