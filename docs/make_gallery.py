"""Draws every lrjax schedule with typical settings: one PNG per family.

Usage::

  python docs/make_gallery.py            # writes docs/gallery_<family>.png
  python docs/make_gallery.py --out DIR  # writes DIR/gallery_<family>.png

A family is the module that defines the constructor (``lrjax._cosine`` ->
``gallery_cosine.png``). Settings are Fashion-MNIST scale: 30 epochs of 469
steps, 14,070 steps in all. Every registered constructor must have an entry in
`EXAMPLES`; the script fails otherwise, so the gallery never silently misses a
schedule (tests/test_plot_cli.py runs it).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import os
import sys
import textwrap

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import lrjax  # noqa: E402  (after the backend choice)
from lrjax import _registry  # noqa: E402  (the constructor registry)
from lrjax._cli import parse_schedule  # noqa: E402  (the safe expression parser)
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.transforms import offset_copy  # noqa: E402

EPOCH = 469
STEPS = 30 * EPOCH  # 14,070


@dataclasses.dataclass(frozen=True)
class Example:
  """One panel: the calls to draw (as written, so the legend is the code)."""

  calls: tuple[str, ...]
  log: bool = False
  steps: int = STEPS


# One entry per constructor, keyed by its name. A call that uses a constructor
# lrjax does not (yet) register is left out; an entry with no call left fails.
EXAMPLES: dict[str, Example] = {
    # --- lrjax._decay ---
    "constant": Example(("constant(0.1)",)),
    "step_decay": Example(("step_decay(0.1, step_size=4690, gamma=0.1)",), log=True),
    "multistep": Example(("multistep(0.1, milestones=[7035, 11256], gamma=0.1)",), log=True),
    "piecewise_constant": Example((
        "piecewise_constant(boundaries=[938, 7035, 11256], values=[0.02, 0.1, 0.01, 0.001])",
    ), log=True),
    "piecewise_interpolate": Example((
        "piecewise_interpolate(boundaries=[938, 7035, 14070], values=[0.01, 0.1, 0.02, 0.0])",
        "piecewise_interpolate(boundaries=[938, 7035, 14070], values=[0.01, 0.1, 0.02, 0.0], "
        "shape='cosine')",
    )),
    "exponential_decay": Example((
        "exponential_decay(0.1, decay_steps=2345, decay_rate=0.5)",
        "exponential_decay(0.1, decay_steps=2345, decay_rate=0.5, staircase=True)",
        "exponential_decay(0.1, decay_steps=2345, decay_rate=0.5, end_value=0.01)",
    ), log=True),
    "inverse_time_decay": Example((
        "inverse_time_decay(0.1, decay_steps=469, decay_rate=0.5)",
        "inverse_time_decay(0.1, decay_steps=469, decay_rate=0.5, staircase=True)",
    )),
    "polynomial_decay": Example((
        "polynomial_decay(0.1, decay_steps=14070)",
        "polynomial_decay(0.1, decay_steps=14070, end_value=0.001, power=2.0)",
        "polynomial_decay(0.1, decay_steps=4690, power=0.5, cycle=True)",
        "polynomial_decay(0.1, decay_steps=14070, power=0.5, k_decay=2.0)",
    )),
    "linear": Example(("linear(0.1, end_value=0.001, steps=14070)",)),
    "inverse_sqrt": Example((
        "inverse_sqrt(0.1)",
        "inverse_sqrt(0.1, warmup_steps=938)",
        "inverse_sqrt(0.1, warmup_steps=938, timescale=4690)",
    ), log=True),
    "tanh_decay": Example((
        "tanh_decay(0.1, decay_steps=14070)",
        "tanh_decay(0.1, decay_steps=14070, end_value=0.001, lower=-4.0, upper=4.0)",
    )),
    # --- lrjax._cosine ---
    "cosine_decay": Example((
        "cosine_decay(0.1, decay_steps=14070)",
        "cosine_decay(0.1, warmup_steps=938, decay_steps=13132, end_value=0.01)",
        "cosine_decay(0.1, decay_steps=14070, exponent=2.0)",
        "cosine_decay(0.1, warmup_steps=938, decay_steps=13132, cycles=1.5)",
        "cosine_decay(0.1, decay_steps=14070, k_decay=2.0)",
    )),
    "cosine_restarts": Example((
        "cosine_restarts(0.1, cycle_steps=2345)",
        "cosine_restarts(0.1, cycle_steps=1407, t_mul=2.0, m_mul=0.7)",
        "cosine_restarts(0.1, cycle_steps=2345, m_mul=0.5, end_value=0.01, cycle_limit=4, "
        "k_decay=2.0, scale_peak=True)",
    )),
    "warmup_stable_decay": Example((
        "warmup_stable_decay(0.1, warmup_steps=469, stable_steps=9380, decay_steps=4221)",
        "warmup_stable_decay(0.1, warmup_steps=469, stable_steps=9380, decay_steps=4221, "
        "decay_shape='1-sqrt')",
        "warmup_stable_decay(0.1, warmup_steps=2345, stable_steps=7504, decay_steps=4221, "
        "warmup_shape='cosine', decay_shape='cosine')",
    )),
    "rex": Example((
        "rex(0.1, decay_steps=14070)",
        "rex(0.1, warmup_steps=938, decay_steps=13132)",
    )),
    # --- lrjax._cyclic ---
    "cyclic": Example((
        "cyclic(base_value=0.001, max_value=0.1, step_size_up=2345)",
        "cyclic(base_value=0.001, max_value=0.1, step_size_up=2345, mode='triangular2')",
        "cyclic(base_value=0.001, max_value=0.1, step_size_up=2345, mode='exp_range', gamma=0.9999)",
    )),
    "one_cycle": Example((
        "one_cycle(peak_value=0.1, total_steps=14070)",
        "one_cycle(peak_value=0.1, total_steps=14070, shape='linear', three_phase=True)",
    )),
    "cyclic_momentum": Example((
        "cyclic_momentum(step_size_up=2345)",
        "cyclic_momentum(step_size_up=2345, mode='triangular2')",
    )),
    "one_cycle_momentum": Example((
        "one_cycle_momentum(total_steps=14070)",
        "one_cycle_momentum(total_steps=14070, shape='linear', three_phase=True)",
    )),
    # --- lrjax._combine ---
    "warmup": Example((
        "warmup(cosine_decay(0.1, decay_steps=13132), steps=938)",
        "warmup(exponential_decay(0.1, decay_steps=2345, decay_rate=0.5), steps=938, shape='cosine')",
        "warmup(cosine_decay(0.1, decay_steps=14070), steps=938, shift=False)",
    )),
    "cooldown": Example((
        "cooldown(constant(0.1), start=9380, decay_steps=4221)",
        "cooldown(cosine_decay(0.1, decay_steps=14070), start=7035, decay_steps=2814, "
        "shape='linear')",
        "cooldown(multistep(0.1, milestones=[4690, 9380], gamma=0.3), start=11256, "
        "decay_steps=2814, end_value=0.001, shape='cosine')",
    )),
    "with_noise": Example((
        "per_epoch(with_noise(cosine_decay(0.1, decay_steps=30), seed=42, begin_step=5, "
        "end_step=24), steps_per_epoch=469)",
        "per_epoch(with_noise(cosine_decay(0.1, decay_steps=30), seed=42, pct=0.3, "
        "kind='uniform'), steps_per_epoch=469)",
    )),
    "sequence": Example((
        "sequence([linear(0.01, end_value=0.1, steps=938), constant(0.1), "
        "polynomial_decay(0.1, decay_steps=4690, end_value=0.001, power=2.0)], "
        "boundaries=[938, 9380])",
    )),
    "switch": Example((
        "switch([constant(0.1), cosine_decay(0.1, decay_steps=14070), "
        "one_cycle(peak_value=0.1, total_steps=14070)], index=1)",
        "switch([constant(0.1), cosine_decay(0.1, decay_steps=14070), "
        "one_cycle(peak_value=0.1, total_steps=14070)], index=2)",
    )),
    "per_epoch": Example((
        "per_epoch(multistep(0.1, milestones=[15, 25], gamma=0.1), steps_per_epoch=469)",
        "per_epoch(exponential_decay(0.1, decay_steps=1, decay_rate=0.85), steps_per_epoch=469)",
    )),
    "product": Example((
        "step_decay(0.1, step_size=4690, gamma=0.3) * warmup(constant(1.0), steps=938)",
        "0.5 * cosine_decay(0.1, decay_steps=14070)",
    )),
}

# Families in reading order, with their headings; others follow, sorted.
FAMILIES = {
    "decay": "decay schedules",
    "cosine": "cosine schedules",
    "cyclic": "cyclic schedules",
    "combine": "combinators",
}


def family(name: str) -> str:
  """``"cosine"`` for a constructor defined in ``lrjax._cosine``."""
  return _registry.lookup(name).__module__.rsplit(".", 1)[-1].lstrip("_")


def _names_called(call: str) -> set[str]:
  tree = ast.parse(call, mode="eval")
  return {
      n.func.id for n in ast.walk(tree)
      if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
  }


def panels() -> dict[str, list[tuple[str, Example]]]:
  """The panels by family: ``{family: [(constructor, example), ...]}``.

  Raises:
    SystemExit: if a registered constructor has no entry in `EXAMPLES`, or
      none of its calls can be built.
  """
  registered = set(_registry.names())
  missing = sorted(registered - set(EXAMPLES))
  if missing:
    raise SystemExit(
        f"make_gallery: no EXAMPLES entry for {', '.join(missing)}; add one"
    )
  out: dict[str, list[tuple[str, Example]]] = {}
  for name in sorted(registered):
    ex = EXAMPLES[name]
    calls = tuple(c for c in ex.calls if _names_called(c) <= registered)
    if not calls:
      raise SystemExit(
          f"make_gallery: every example call for {name} uses a constructor "
          f"lrjax does not register; give it one that builds"
      )
    out.setdefault(family(name), []).append((name, dataclasses.replace(ex, calls=calls)))
  order = [f for f in FAMILIES if f in out] + sorted(set(out) - set(FAMILIES))
  # Within a family, the order of EXAMPLES (simple to composite).
  rank = {n: i for i, n in enumerate(EXAMPLES)}
  return {f: sorted(out[f], key=lambda p: rank[p[0]]) for f in order}


def draw_family(title: str, entries: list[tuple[str, Example]], path: str) -> None:
  """One figure, two panels a row, each titled by constructor with its calls."""
  cols = 2
  rows = (len(entries) + cols - 1) // cols
  fig = Figure(figsize=(12, 4.2 * rows), layout="constrained")
  fig.suptitle(f"lrjax {title} ({STEPS:,} steps = 30 epochs x {EPOCH})",
               fontsize=13, fontweight="bold")
  axes = fig.subplots(rows, cols, squeeze=False).ravel()
  for ax, (name, ex) in zip(axes, entries):
    schedules = [parse_schedule(c) for c in ex.calls]
    labels = ["\n".join(textwrap.wrap(c, 62, subsequent_indent="    ",
                                      break_long_words=False)) for c in ex.calls]
    lrjax.plot(schedules, ex.steps, ax=ax, labels=labels, log=ex.log)
    ax.set_title(f"lrjax.{name}", fontsize=11, fontweight="bold", loc="left")
    if name.endswith("_momentum"):
      ax.set_ylabel("momentum")
    # The calls go under the panel, so they never hide the curve.
    below = offset_copy(ax.transAxes, fig=fig, y=-34, units="points")
    ax.legend(prop={"family": "monospace", "size": 8}, loc="upper left",
              bbox_to_anchor=(0.0, 0.0), bbox_transform=below, frameon=False,
              borderaxespad=0.0)
    ax.set_xlim(0, ex.steps)
    if not ex.log:
      ax.set_ylim(bottom=0)
  for ax in axes[len(entries):]:
    ax.set_visible(False)
  fig.savefig(path, dpi=80)


def main(argv: list[str] | None = None) -> list[str]:
  """Writes ``gallery_<family>.png`` per family; returns the paths written."""
  here = os.path.dirname(os.path.abspath(__file__))
  parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
  parser.add_argument("--out", default=here, help="output folder (default: docs/)")
  args = parser.parse_args(argv)
  os.makedirs(args.out, exist_ok=True)
  written = []
  for fam, entries in panels().items():
    path = os.path.join(args.out, f"gallery_{fam}.png")
    draw_family(FAMILIES.get(fam, f"{fam} schedules"), entries, path)
    written.append(path)
    print(f"wrote {path}: {', '.join(n for n, _ in entries)}")
  return written


if __name__ == "__main__":
  main(sys.argv[1:])
