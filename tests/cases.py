"""The one registry of schedule cases that every generic test runs over.

A case builds an lrjax schedule and names its float64 reference (from
`reference.py`) and the steps where the schedule changes phase: the generic
tests evaluate each such point -1/0/+1, step 0, the end and far past it.
Families append their cases below, one block each.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable

import numpy as np
import pytest

import lrjax
import reference as ref


@dataclasses.dataclass(frozen=True)
class Case:
  id: str
  make: Callable[[], lrjax.Schedule]
  ref: Callable[[np.ndarray], np.ndarray]
  points: tuple[int, ...]  # phase boundaries (each tested at -1, 0, +1)
  end: int  # the last step at which the rate still changes
  warns: str | None = None  # a legal but odd setting: its constructor warns so
  finite_below: int | None = None  # a growing schedule is inf from about here

  def within(self, steps) -> np.ndarray:
    """The steps at which the rate is finite (all, unless it grows to inf)."""
    steps = np.asarray(steps, np.int64)
    return steps if self.finite_below is None else steps[steps < self.finite_below]

  def expect_warning(self):
    """A context in which building the schedule must warn (when it should)."""
    if self.warns is None:
      return contextlib.nullcontext()
    return pytest.warns(UserWarning, match=self.warns)

  def build(self) -> lrjax.Schedule:
    """The schedule, its warning (if any) checked and caught."""
    with self.expect_warning():
      return self.make()

  def grid(self) -> np.ndarray:
    pts = {0, 1, self.end, self.end + 1, 2 * self.end + 7, 10**6 + 3}
    for p in self.points:
      pts.update({p - 1, p, p + 1})
    return self.within(sorted(p for p in pts if p >= 0))


CASES: list[Case] = []

# --- _decay (constant, step_decay) and _combine ------------------------------
CASES += [
    Case("constant", lambda: lrjax.constant(0.3),
         lambda t: ref.constant(t, 0.3), (), 1),
    Case("step_decay", lambda: lrjax.step_decay(0.1, step_size=30, gamma=0.1),
         lambda t: ref.step_lr(t, 0.1, 30, 0.1), (30, 60, 90), 90),
    # A growing step decay warns: it reaches inf (0.1 * 2**128, past 6.5e6
    # steps here; the generic tests stop at 5e6). 2.0 is exact in float32.
    Case("step_decay_gamma_gt1",
         lambda: lrjax.step_decay(0.1, step_size=50_000, gamma=2.0),
         lambda t: ref.step_lr(t, 0.1, 50_000, 2.0), (50_000, 100_000), 100_000,
         warns="step_decay: gamma=2.0 > 1 grows the rate without bound",
         finite_below=5_000_000),
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
    # The middle of three kinds: the others are evaluated too, and must not leak.
    Case("switch",
         lambda: lrjax.switch(
             [lrjax.constant(0.1), lrjax.step_decay(0.3, step_size=4, gamma=0.5),
              lrjax.cosine_decay(0.2, decay_steps=9)], index=1),
         lambda t: ref.step_lr(t, 0.3, 4, 0.5), (4, 8, 12), 12),
    Case("switch_last",
         lambda: lrjax.switch(
             [lrjax.constant(0.1), lrjax.step_decay(0.3, step_size=4, gamma=0.5),
              lrjax.cosine_decay(0.2, decay_steps=9)], index=2),
         lambda t: ref.cosine_annealing(np.minimum(t, 9), 0.2, 9), (9,), 9),
    Case("per_epoch",
         lambda: lrjax.per_epoch(lrjax.step_decay(0.3, step_size=2, gamma=0.5),
                                 steps_per_epoch=469),
         lambda t: ref.step_lr(np.asarray(t) // 469, 0.3, 2, 0.5),
         (938, 1876), 1876),
]

# --- _combine: cooldown, each shape, from the rate in effect at its start in
# schedules of different kinds ------------------------------------------------
CASES += [
    Case("cooldown_constant_linear",
         lambda: lrjax.cooldown(lrjax.constant(0.3), start=100, decay_steps=20,
                                shape="linear"),
         lambda t: ref.cooldown(t, lambda u: ref.constant(u, 0.3), 100, 20,
                                shape="linear"), (100, 120), 120),
    # From the stable phase of a WSD run, long before its own decay.
    Case("cooldown_wsd_stable_1sqrt",
         lambda: lrjax.cooldown(
             lrjax.warmup_stable_decay(0.1, warmup_steps=10, stable_steps=1000,
                                       decay_steps=100), start=500, decay_steps=200,
             end_value=0.001),
         lambda t: ref.cooldown(t, lambda u: ref.wsd(u, 0.1, 10, 1000, 100), 500, 200,
                                end=0.001), (10, 500, 700), 700),
    Case("cooldown_cosine_cosine",
         lambda: lrjax.cooldown(lrjax.cosine_decay(0.2, decay_steps=100), start=37,
                                decay_steps=30, end_value=0.002, shape="cosine"),
         lambda t: ref.cooldown(
             t, lambda u: ref.cosine_annealing(np.minimum(u, 100), 0.2, 100), 37, 30,
             end=0.002, shape="cosine"), (37, 67), 67),
    # At a milestone: the decay starts from the rate after it.
    Case("cooldown_multistep_at_milestone",
         lambda: lrjax.cooldown(lrjax.multistep(0.1, milestones=[30, 60], gamma=0.1),
                                start=30, decay_steps=10),
         lambda t: ref.cooldown(t, lambda u: ref.multistep_lr(u, 0.1, [30, 60], 0.1),
                                30, 10), (30, 40), 40),
    # One step before a milestone: from the rate before it; the milestone
    # inside the cooldown changes nothing.
    Case("cooldown_multistep_before_milestone",
         lambda: lrjax.cooldown(lrjax.multistep(0.1, milestones=[30, 60], gamma=0.1),
                                start=59, decay_steps=25, shape="linear"),
         lambda t: ref.cooldown(t, lambda u: ref.multistep_lr(u, 0.1, [30, 60], 0.1),
                                59, 25, shape="linear"), (30, 59, 60, 84), 84),
]

# --- _decay: multistep, piecewise, exponential, inverse-time, polynomial,
# linear, inverse sqrt -------------------------------------------------------
CASES += [
    Case("multistep",
         lambda: lrjax.multistep(0.05, milestones=[30, 80], gamma=0.1),
         lambda t: ref.multistep_lr(t, 0.05, [30, 80], 0.1), (30, 80), 80),
    Case("multistep_repeated",
         lambda: lrjax.multistep(0.4, milestones=[10, 10, 25], gamma=0.5),
         lambda t: ref.multistep_lr(t, 0.4, [10, 10, 25], 0.5), (10, 25), 25),
    Case("multistep_zero_and_growth",
         lambda: lrjax.multistep(0.01, milestones=[0, 3, 1000], gamma=1.5),
         lambda t: ref.multistep_lr(t, 0.01, [0, 3, 1000], 1.5), (3, 1000), 1000),
    Case("piecewise_constant",
         lambda: lrjax.piecewise_constant(boundaries=[100, 110],
                                          values=[1.0, 0.5, 0.1]),
         lambda t: ref.piecewise_constant(t, [100, 110], [1.0, 0.5, 0.1]),
         (100, 110), 110),
    Case("piecewise_constant_one",
         lambda: lrjax.piecewise_constant(boundaries=[1], values=[0.2, 0.0]),
         lambda t: ref.piecewise_constant(t, [1], [0.2, 0.0]), (1,), 1),
    Case("piecewise_constant_up_down",
         lambda: lrjax.piecewise_constant(boundaries=[5, 6, 40, 2**31 - 2],
                                          values=[0.01, 0.3, 0.1, 0.03, 0.001]),
         lambda t: ref.piecewise_constant(t, [5, 6, 40, 2**31 - 2],
                                          [0.01, 0.3, 0.1, 0.03, 0.001]),
         (5, 6, 40, 2**31 - 2), 40),
    # optax's piecewise_interpolate_schedule takes cumulative scales.
    Case("piecewise_interpolate",
         lambda: lrjax.piecewise_interpolate(boundaries=[4, 8], values=[1.0, 0.1, 0.001]),
         lambda t: ref.optax_piecewise_interpolate(t, "linear", 1.0, {4: 0.1, 8: 0.01}),
         (4, 8), 8),
    Case("piecewise_interpolate_cosine_up_down",
         lambda: lrjax.piecewise_interpolate(boundaries=[5, 6, 40],
                                             values=[0.01, 0.3, 0.1, 0.0], shape="cosine"),
         lambda t: ref.optax_piecewise_interpolate(
             t, "cosine", 0.01, {5: 30.0, 6: 1 / 3, 40: 0.0}), (5, 6, 40), 40),
    # optax linear_onecycle_schedule(100, 0.1): {int(0.3 * 100): 25,
    # int(0.85 * 100): 1 / 25, 100: 1e-4} from 0.1 / 25.
    Case("piecewise_interpolate_optax_linear_onecycle",
         lambda: lrjax.piecewise_interpolate(boundaries=[30, 85, 100],
                                             values=[0.004, 0.1, 0.004, 4e-7]),
         lambda t: ref.optax_piecewise_interpolate(
             t, "linear", 0.1 / 25, {30: 25.0, 85: 1 / 25, 100: 1e-4}), (30, 85, 100), 100),
    Case("exponential_decay",
         lambda: lrjax.exponential_decay(0.1, decay_steps=100, decay_rate=0.96),
         lambda t: ref.exponential_decay(t, 0.1, 100, 0.96), (100, 1000), 5000),
    Case("exponential_decay_staircase",
         lambda: lrjax.exponential_decay(0.1, decay_steps=7, decay_rate=0.5,
                                         staircase=True),
         lambda t: ref.exponential_decay(t, 0.1, 7, 0.5, staircase=True),
         (7, 14, 21), 70),
    Case("exponential_decay_floor",
         lambda: lrjax.exponential_decay(0.1, decay_steps=10, decay_rate=0.5,
                                         end_value=0.01),
         lambda t: ref.exponential_decay(t, 0.1, 10, 0.5, end_value=0.01),
         (10, 20, 30, 33, 34), 34),
    Case("exponential_decay_staircase_floor",
         lambda: lrjax.exponential_decay(0.1, decay_steps=10, decay_rate=0.5,
                                         staircase=True, end_value=0.01),
         lambda t: ref.exponential_decay(t, 0.1, 10, 0.5, staircase=True,
                                         end_value=0.01), (10, 20, 30, 40), 40),
    Case("exponential_decay_growth_ceiling",
         lambda: lrjax.exponential_decay(0.01, decay_steps=5, decay_rate=1.1,
                                         end_value=0.05),
         lambda t: ref.exponential_decay(t, 0.01, 5, 1.1, end_value=0.05),
         (5, 80, 84, 85), 85),
    Case("exponential_decay_torch_exponential_lr",
         lambda: lrjax.exponential_decay(0.1, decay_steps=1, decay_rate=0.9),
         lambda t: ref.exponential_lr(t, 0.1, 0.9), (1, 2), 200),
    Case("inverse_time_decay",
         lambda: lrjax.inverse_time_decay(0.1, decay_steps=10, decay_rate=0.5),
         lambda t: ref.inverse_time_decay(t, 0.1, 10, 0.5), (10, 20), 100),
    Case("inverse_time_decay_staircase",
         lambda: lrjax.inverse_time_decay(0.2, decay_steps=3, decay_rate=2.0,
                                          staircase=True),
         lambda t: ref.inverse_time_decay(t, 0.2, 3, 2.0, staircase=True),
         (3, 6, 9), 30),
    Case("polynomial_decay",
         lambda: lrjax.polynomial_decay(0.1, decay_steps=100, end_value=0.001),
         lambda t: ref.polynomial_decay(t, 0.1, 100, 0.001, 1.0), (100,), 100),
    Case("polynomial_decay_power_torch",
         lambda: lrjax.polynomial_decay(0.05, decay_steps=50, power=0.9),
         lambda t: ref.polynomial_lr(t, 0.05, 50, 0.9), (1, 49, 50), 50),
    Case("polynomial_decay_power2_rising",
         lambda: lrjax.polynomial_decay(0.01, decay_steps=9, end_value=0.2,
                                        power=2.0),
         lambda t: ref.polynomial_decay(t, 0.01, 9, 0.2, 2.0), (9,), 9),
    Case("polynomial_decay_cycle",
         lambda: lrjax.polynomial_decay(0.1, decay_steps=7, end_value=0.01,
                                        power=0.5, cycle=True),
         lambda t: ref.polynomial_decay(t, 0.1, 7, 0.01, 0.5, cycle=True),
         (1, 7, 14, 21), 21),
    Case("polynomial_decay_cycle_linear",
         lambda: lrjax.polynomial_decay(0.3, decay_steps=1000, cycle=True),
         lambda t: ref.polynomial_decay(t, 0.3, 1000, 0.0, 1.0, cycle=True),
         (1000, 2000), 3000),
    Case("linear_decay",
         lambda: lrjax.linear(0.1, end_value=0.01, steps=20),
         lambda t: ref.linear_lr(t, 1.0, 0.1, 0.01, 20), (20,), 20),
    Case("linear_ramp_from_zero",
         lambda: lrjax.linear(0.0, end_value=0.3, steps=7),
         lambda t: ref.linear_lr(t, 0.3, 0.0, 1.0, 7), (7,), 7),
    Case("linear_torch_linear_lr",
         lambda: lrjax.linear(0.05 / 3, end_value=0.05, steps=5),
         lambda t: ref.linear_lr(t, 0.05, 1.0 / 3, 1.0, 5), (5,), 5),
    Case("inverse_sqrt_no_warmup",
         lambda: lrjax.inverse_sqrt(0.1),
         lambda t: ref.inverse_sqrt(t, 0.1, 0), (1, 3), 100),
    Case("inverse_sqrt_warmup",
         lambda: lrjax.inverse_sqrt(1e-3, warmup_steps=4000),
         lambda t: ref.inverse_sqrt(t, 1e-3, 4000), (4000,), 16000),
    Case("inverse_sqrt_warmup_one",
         lambda: lrjax.inverse_sqrt(0.5, warmup_steps=1),
         lambda t: ref.inverse_sqrt(t, 0.5, 1), (1, 2), 100),
    Case("inverse_sqrt_warmup_init",
         lambda: lrjax.inverse_sqrt(0.01, warmup_steps=25, init_value=1e-4),
         lambda t: ref.inverse_sqrt(t, 0.01, 25, warmup_init_lr=1e-4), (25,), 400),
]

# --- timm and Hugging Face (issue 14): k_decay, cycles, cycle_limit, timm's
# cycle_decay, both warmup conventions, tanh, HF's inverse sqrt and WSD
# warmups, LR noise. Each new argument is in one generic case; the other
# porting-table rows are in PORTING_ROWS, checked against their references
# by tests/test_timm_hf.py alone (the generic tests cost ~3 s a case) ------
CASES += [
    Case("cosine_decay_hf_min_lr_cycles",
         lambda: lrjax.cosine_decay(0.3, warmup_steps=5, decay_steps=40, end_value=0.03,
                                    cycles=0.75),
         lambda t: ref.hf_cosine(np.minimum(t, 45), 0.3, 5, 45, 0.75, min_lr_rate=0.1),
         (5, 45), 45),
    Case("cosine_decay_timm_k_decay",
         lambda: lrjax.cosine_decay(0.1, decay_steps=100, end_value=0.001, k_decay=2.0),
         lambda t: ref.timm_cosine(t, 0.1, 100, lr_min=0.001, k_decay=2.0), (100,), 100),
    Case("cosine_restarts_timm",
         lambda: lrjax.cosine_restarts(0.1, cycle_steps=20, t_mul=2.0, m_mul=0.5,
                                       end_value=0.01, cycle_limit=3, k_decay=1.5,
                                       scale_peak=True),
         lambda t: ref.timm_cosine(t, 0.1, 20, 0.01, 2.0, 0.5, 3, k_decay=1.5),
         (20, 60, 140), 140),
    Case("polynomial_decay_timm_k_decay",
         lambda: lrjax.polynomial_decay(0.1, decay_steps=50, end_value=0.001, power=0.5,
                                        k_decay=2.0),
         lambda t: ref.timm_poly(t, 0.1, 50, 0.5, 0.001, k_decay=2.0), (50,), 50),
    # timm warmup_prefix=False (its default): t_initial=100, warmup_t=10.
    Case("warmup_timm_prefix_false",
         lambda: lrjax.warmup(lrjax.cosine_decay(0.1, decay_steps=100), steps=10,
                              shift=False),
         lambda t: ref.timm_cosine(t, 0.1, 100, warmup_t=10), (10, 100), 100),
    Case("tanh_decay_bounds_end",
         lambda: lrjax.tanh_decay(0.5, decay_steps=37, end_value=0.01, lower=-4.0,
                                  upper=5.0),
         lambda t: ref.timm_tanh(t, 0.5, 37, -4.0, 5.0, 0.01), (37,), 37),
    Case("inverse_sqrt_hf",
         lambda: lrjax.inverse_sqrt(0.01, warmup_steps=100, timescale=100),
         lambda t: ref.hf_inverse_sqrt(t, 0.01, 100), (100,), 1000),
    Case("wsd_hf_cosine_warmup_min_lr",
         lambda: lrjax.warmup_stable_decay(0.1, warmup_steps=10, stable_steps=20,
                                           decay_steps=30, init_value=0.01, end_value=0.01,
                                           decay_shape="cosine", warmup_shape="cosine"),
         lambda t: ref.hf_wsd(t, 0.1, 10, 20, 30, "cosine", "cosine", 0.1),
         (10, 30, 60), 60),
    Case("wsd_hf_1sqrt_warmup",
         lambda: lrjax.warmup_stable_decay(0.2, warmup_steps=16, stable_steps=0,
                                           decay_steps=9, warmup_shape="1-sqrt",
                                           decay_shape="1-sqrt"),
         lambda t: ref.hf_wsd(t, 0.2, 16, 0, 9, "1-sqrt", "1-sqrt"), (16, 25), 25),
    # timm's LR noise in law; here its documented draw per step.
    Case("with_noise_normal_window",
         lambda: lrjax.with_noise(lrjax.cosine_decay(0.1, decay_steps=100), seed=3,
                                  begin_step=10, end_step=60),
         lambda t: ref.noisy(t, lambda u: ref.cosine_annealing(np.minimum(u, 100), 0.1, 100),
                             3, 0.67, begin=10, end=60), (10, 60, 100), 100),
]

PORTING_ROWS: list[Case] = [
    # HF get_cosine_schedule_with_warmup(num_cycles=1.0) climbs back past the
    # end; lrjax holds the value it reached at the end (the reference is
    # taken at min(t, N)).
    Case("cosine_decay_hf_cycles",
         lambda: lrjax.cosine_decay(0.1, warmup_steps=10, decay_steps=90, cycles=1.0),
         lambda t: ref.hf_cosine(np.minimum(t, 100), 0.1, 10, 100, 1.0),
         (10, 55, 100), 100),
    Case("cosine_restarts_timm_uniform_limit",
         lambda: lrjax.cosine_restarts(0.2, cycle_steps=10, m_mul=0.8, end_value=0.02,
                                       cycle_limit=2, scale_peak=True),
         lambda t: ref.timm_cosine(t, 0.2, 10, 0.02, 1.0, 0.8, 2), (10, 20), 20),
    Case("warmup_timm_prefix_true",
         lambda: lrjax.warmup(lrjax.cosine_decay(0.1, decay_steps=100, end_value=0.001),
                              steps=10, init_value=1e-4),
         lambda t: ref.timm_cosine(t, 0.1, 100, lr_min=0.001, warmup_t=10,
                                   warmup_lr_init=1e-4, warmup_prefix=True), (10, 110), 110),
    Case("tanh_decay", lambda: lrjax.tanh_decay(0.1, decay_steps=100),
         lambda t: ref.timm_tanh(t, 0.1, 100), (100,), 100),
    Case("inverse_sqrt_hf_no_warmup",
         lambda: lrjax.inverse_sqrt(0.1, timescale=10_000),
         lambda t: ref.hf_inverse_sqrt(t, 0.1, 0), (1,), 100_000),
    # HF SchedulerType rows written with lrjax's constructors.
    Case("hf_linear",
         lambda: lrjax.warmup_stable_decay(0.05, warmup_steps=7, stable_steps=0,
                                           decay_steps=93),
         lambda t: ref.hf_linear(t, 0.05, 7, 100), (7, 100), 100),
    Case("hf_constant_with_warmup",
         lambda: lrjax.warmup(lrjax.constant(0.3), steps=12),
         lambda t: ref.hf_constant_with_warmup(t, 0.3, 12), (12,), 12),
    Case("hf_polynomial",
         lambda: lrjax.warmup(lrjax.polynomial_decay(0.1, decay_steps=90, end_value=1e-4,
                                                     power=2.0), steps=10),
         lambda t: ref.hf_polynomial(t, 0.1, 10, 100, 1e-4, 2.0), (10, 100), 100),
    Case("hf_cosine_with_restarts",
         lambda: lrjax.warmup(lrjax.cosine_restarts(0.1, cycle_steps=16, cycle_limit=4),
                              steps=8),
         lambda t: ref.hf_hard_restarts(t, 0.1, 8, 72, 4), (8, 24, 40, 56, 72), 72),
    Case("with_noise_uniform",
         lambda: lrjax.with_noise(lrjax.step_decay(0.2, step_size=10, gamma=0.5), seed=11,
                                  pct=0.25, kind="uniform", begin_step=5),
         lambda t: ref.noisy(t, lambda u: ref.step_lr(u, 0.2, 10, 0.5), 11, 0.25,
                             kind="uniform", begin=5), (5, 10, 20), 40),
]

# --- _cosine (cosine_decay, cosine_restarts, warmup_stable_decay, rex) and
# --- _cyclic (cyclic, one_cycle) ----------------------------------------------
CASES += [
    Case("cosine_decay", lambda: lrjax.cosine_decay(0.1, decay_steps=100),
         lambda t: ref.cosine_annealing(np.minimum(t, 100), 0.1, 100), (100,), 100),
    Case("cosine_decay_end_value",
         lambda: lrjax.cosine_decay(0.3, decay_steps=37, end_value=0.02),
         lambda t: ref.cosine_annealing(np.minimum(t, 37), 0.3, 37, 0.02), (37,), 37),
    # d2l's CosineScheduler counts the warmup in max_update = W + D.
    Case("cosine_decay_warmup",
         lambda: lrjax.cosine_decay(0.5, warmup_steps=50, decay_steps=950,
                                    end_value=0.01, init_value=0.05),
         lambda t: ref.d2l_cosine(t, 50 + 950, 0.5, 0.01, 50, 0.05), (50, 1000), 1000),
    Case("cosine_decay_warmup_short",
         lambda: lrjax.cosine_decay(1.0, warmup_steps=3, decay_steps=4),
         lambda t: ref.d2l_cosine(t, 3 + 4, 1.0, 0.0, 3, 0.0), (3, 7), 7),
    # optax's exponent (cosine_decay_schedule, warmup_cosine_decay_schedule,
    # whose decay_steps count the warmup).
    Case("cosine_decay_exponent",
         lambda: lrjax.cosine_decay(0.1, decay_steps=100, end_value=0.01, exponent=2.0),
         lambda t: ref.optax_warmup_cosine(t, 0.0, 0.1, 0, 100, 0.01, 2.0), (100,), 100),
    Case("cosine_decay_warmup_exponent",
         lambda: lrjax.cosine_decay(0.3, warmup_steps=10, decay_steps=40, end_value=0.003,
                                    init_value=0.03, exponent=0.5),
         lambda t: ref.optax_warmup_cosine(t, 0.03, 0.3, 10, 10 + 40, 0.003, 0.5),
         (10, 50), 50),
    Case("cosine_decay_warmup_one_step_decay",
         lambda: lrjax.cosine_decay(0.2, warmup_steps=6, decay_steps=1, end_value=0.02,
                                    init_value=0.2),
         lambda t: ref.d2l_cosine(t, 6 + 1, 0.2, 0.02, 6, 0.2), (6, 7), 7),
    Case("cosine_restarts", lambda: lrjax.cosine_restarts(0.1, cycle_steps=10),
         lambda t: ref.sgdr(t, 0.1, 10), (10, 20, 30), 30),
    Case("cosine_restarts_tmul2",
         lambda: lrjax.cosine_restarts(0.05, cycle_steps=10, t_mul=2.0, end_value=0.001),
         lambda t: ref.sgdr(t, 0.05, 10, 2, eta_min=0.001), (10, 30, 70, 150), 150),
    Case("cosine_restarts_tmul3",
         lambda: lrjax.cosine_restarts(1.0, cycle_steps=5, t_mul=3.0),
         lambda t: ref.sgdr(t, 1.0, 5, 3), (5, 20, 65, 200), 200),
    Case("cosine_restarts_mmul",
         lambda: lrjax.cosine_restarts(0.2, cycle_steps=16, m_mul=0.5),
         lambda t: ref.sgdr(t, 0.2, 16, 1, m_mul=0.5), (16, 32, 48), 48),
    Case("cosine_restarts_tmul2_mmul",
         lambda: lrjax.cosine_restarts(0.3, cycle_steps=7, t_mul=2.0, m_mul=0.75,
                                       end_value=0.003),
         lambda t: ref.sgdr(t, 0.3, 7, 2, m_mul=0.75, eta_min=0.003),
         (7, 21, 49, 105, 217), 217),
    # Non-integer t_mul (Keras): cycles start at 8, 20, 38, 65, 105.5, 166.25.
    Case("cosine_restarts_tmul_1p5",
         lambda: lrjax.cosine_restarts(0.1, cycle_steps=8, t_mul=1.5),
         lambda t: ref.sgdr(t, 0.1, 8, 1.5), (8, 20, 38, 65, 106, 167), 167),
    Case("wsd_linear",
         lambda: lrjax.warmup_stable_decay(0.01, warmup_steps=100,
                                           stable_steps=800, decay_steps=100),
         lambda t: ref.wsd(t, 0.01, 100, 800, 100), (100, 900, 1000), 1000),
    Case("wsd_cosine",
         lambda: lrjax.warmup_stable_decay(3e-4, warmup_steps=10,
                                           stable_steps=50, decay_steps=40,
                                           init_value=1e-5, end_value=3e-5,
                                           decay_shape="cosine"),
         lambda t: ref.wsd(t, 3e-4, 10, 50, 40, 1e-5, 3e-5, "cosine"),
         (10, 60, 100), 100),
    Case("wsd_1sqrt",
         lambda: lrjax.warmup_stable_decay(0.1, warmup_steps=0,
                                           stable_steps=20, decay_steps=30,
                                           end_value=0.001, decay_shape="1-sqrt"),
         lambda t: ref.wsd(t, 0.1, 0, 20, 30, 0.0, 0.001, "1-sqrt"), (20, 50), 50),
    Case("wsd_1sqrt_no_stable",
         lambda: lrjax.warmup_stable_decay(2.0, warmup_steps=5,
                                           stable_steps=0, decay_steps=7,
                                           decay_shape="1-sqrt"),
         lambda t: ref.wsd(t, 2.0, 5, 0, 7, shape="1-sqrt"), (5, 12), 12),
    Case("rex", lambda: lrjax.rex(0.1, decay_steps=100),
         lambda t: ref.rex(t, 0.1, 100), (100,), 100),
    # The reference's total_steps is warmup_steps + decay_steps.
    Case("rex_warmup_end",
         lambda: lrjax.rex(1.0, warmup_steps=50, decay_steps=450, end_value=0.1),
         lambda t: ref.rex(t, 1.0, 50 + 450, 0.1, 50), (50, 500), 500),
    Case("rex_warmup_init",
         lambda: lrjax.rex(0.3, warmup_steps=10, decay_steps=30, init_value=0.03),
         lambda t: ref.rex(t, 0.3, 10 + 30, 0.0, 10, 0.03), (10, 40), 40),
    Case("cyclic_triangular",
         lambda: lrjax.cyclic(base_value=0.001, max_value=0.006, step_size_up=20),
         lambda t: ref.cyclic_lr(t, 0.001, 0.006, 20), (20, 40, 60, 80), 80),
    Case("cyclic_triangular2_asym",
         lambda: lrjax.cyclic(base_value=0.01, max_value=0.1, step_size_up=5,
                              step_size_down=15, mode="triangular2"),
         lambda t: ref.cyclic_lr(t, 0.01, 0.1, 5, 15, "triangular2"),
         (5, 20, 25, 40, 45, 60), 60),
    # gamma = 1 - 2**-6 is exact in float32 (see cyclic's precision note).
    Case("cyclic_exp_range",
         lambda: lrjax.cyclic(base_value=0.01, max_value=0.1, step_size_up=8,
                              step_size_down=4, mode="exp_range", gamma=0.984375),
         lambda t: ref.cyclic_lr(t, 0.01, 0.1, 8, 4, "exp_range", 0.984375),
         (8, 12, 20, 24), 48),
    Case("cyclic_sawtooth",
         lambda: lrjax.cyclic(base_value=0.0, max_value=1.0, step_size_up=4,
                              step_size_down=0),
         lambda t: ref.cyclic_lr(t, 0.0, 1.0, 4, 0), (4, 8), 8),
    Case("one_cycle", lambda: lrjax.one_cycle(peak_value=0.1, total_steps=100),
         lambda t: ref.one_cycle_lr(t, 0.1, 100), (30, 99), 99),
    # 0.29 * 100 - 1 = 27.999999999999996 in float64: torch's phase 2 starts
    # at 28 (where both phases give max_value).
    Case("one_cycle_pct_rounding",
         lambda: lrjax.one_cycle(peak_value=0.1, total_steps=100, pct_start=0.29),
         lambda t: ref.one_cycle_lr(t, 0.1, 100, 0.29), (28, 99), 99),
    Case("one_cycle_linear",
         lambda: lrjax.one_cycle(peak_value=1.0, total_steps=1000, pct_start=0.25,
                                 shape="linear", div_factor=10.0,
                                 final_div_factor=100.0),
         lambda t: ref.one_cycle_lr(t, 1.0, 1000, 0.25, "linear", 10.0, 100.0),
         (250, 999), 999),
    Case("one_cycle_three_phase",
         lambda: lrjax.one_cycle(peak_value=0.5, total_steps=200, three_phase=True),
         lambda t: ref.one_cycle_lr(t, 0.5, 200, three_phase=True), (60, 119, 199), 199),
    Case("one_cycle_three_phase_linear",
         lambda: lrjax.one_cycle(peak_value=0.02, total_steps=37, pct_start=0.45,
                                 shape="linear", three_phase=True),
         lambda t: ref.one_cycle_lr(t, 0.02, 37, 0.45, "linear", three_phase=True),
         (16, 32, 36), 36),
    Case("one_cycle_tiny",
         lambda: lrjax.one_cycle(peak_value=1.0, total_steps=3, pct_start=0.5),
         lambda t: ref.one_cycle_lr(t, 1.0, 3, 0.5), (1, 2), 2),
    # The momentum curves cycled against the rate (torch's cycle_momentum=True).
    Case("cyclic_momentum",
         lambda: lrjax.cyclic_momentum(step_size_up=20),
         lambda t: ref.cyclic_momentum(t, 0.8, 0.9, 20), (20, 40, 60, 80), 80),
    Case("cyclic_momentum_triangular2_asym",
         lambda: lrjax.cyclic_momentum(base_value=0.85, max_value=0.95, step_size_up=5,
                                       step_size_down=15, mode="triangular2"),
         lambda t: ref.cyclic_momentum(t, 0.85, 0.95, 5, 15, "triangular2"),
         (5, 20, 25, 40, 45, 60), 60),
    Case("cyclic_momentum_exp_range",
         lambda: lrjax.cyclic_momentum(base_value=0.5, max_value=0.99, step_size_up=8,
                                       step_size_down=4, mode="exp_range",
                                       gamma=0.984375),
         lambda t: ref.cyclic_momentum(t, 0.5, 0.99, 8, 4, "exp_range", 0.984375),
         (8, 12, 20, 24), 48),
    Case("one_cycle_momentum",
         lambda: lrjax.one_cycle_momentum(total_steps=100),
         lambda t: ref.one_cycle_momentum(t, 100), (30, 99), 99),
    Case("one_cycle_momentum_linear",
         lambda: lrjax.one_cycle_momentum(total_steps=1000, base_value=0.8,
                                          max_value=0.9, pct_start=0.25,
                                          shape="linear"),
         lambda t: ref.one_cycle_momentum(t, 1000, 0.8, 0.9, 0.25, "linear"),
         (250, 999), 999),
    Case("one_cycle_momentum_three_phase",
         lambda: lrjax.one_cycle_momentum(total_steps=37, pct_start=0.45,
                                          three_phase=True),
         lambda t: ref.one_cycle_momentum(t, 37, pct_start=0.45, three_phase=True),
         (16, 32, 36), 36),
]
