"""The ``lrjax`` command line: plot a schedule, print its values or its dict.

A schedule is given as a Python-like call, parsed safely (never `eval`): only
lrjax's constructors, literals (numbers, strings, booleans, None, lists and
tuples), unary minus, ``+ - * /`` between numbers, and ``*`` between schedules
and numbers. It may also be a JSON dict as printed by ``--json``, or
``@file.json``.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import re
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

import lrjax
from lrjax import _checks, _registry
from lrjax._base import Schedule

__all__ = ["main", "parse_schedule", "ExpressionError"]

_PROG = "lrjax"
_EXAMPLES = """\
examples:
  lrjax plot 'cosine_decay(0.3, warmup_steps=469, decay_steps=13601)' --steps 14070 -o cos.png
  lrjax plot 'step_decay(0.1, step_size=4690, gamma=0.1)' 'constant(0.05)' --steps 14070 --log
  lrjax show 'warmup(constant(0.1), steps=469)' --at 0,100,469,1000
  lrjax show 'one_cycle(peak_value=0.3, total_steps=14070)' --at 0,4221,14069
  lrjax show 'step_decay(0.1, step_size=30, gamma=0.1)' --json > sched.json
  lrjax show @sched.json --at 0,30,60
"""


class ExpressionError(ValueError):
  """A schedule expression that cannot be parsed or built (one line)."""


# --- the safe parser -----------------------------------------------------------

_NODE_NAMES = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscript",
    ast.Lambda: "lambda",
    ast.Dict: "dict",
    ast.Set: "set",
    ast.ListComp: "comprehension",
    ast.SetComp: "comprehension",
    ast.DictComp: "comprehension",
    ast.GeneratorExp: "comprehension",
    ast.Compare: "comparison",
    ast.BoolOp: "boolean operator",
    ast.IfExp: "conditional expression",
    ast.JoinedStr: "f-string",
    ast.NamedExpr: "assignment expression",
    ast.Starred: "star unpacking",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
}


def parse_schedule(text: str) -> Schedule:
  """Builds a schedule from an expression, a JSON dict or ``@file.json``.

  Args:
    text: ``"cosine_decay(0.3, decay_steps=100)"`` (lrjax constructors and
      literals only, nested calls allowed), a JSON dict as printed by
      ``Schedule.to_dict``, or ``@path`` to a file holding either.

  Returns:
    The schedule.

  Raises:
    ExpressionError: (a `ValueError`) with a one-line message that points at
      the problem, if `text` is not such an expression, or a constructor
      rejects its arguments.

  Example:
    >>> from lrjax._cli import parse_schedule
    >>> s = parse_schedule("warmup(constant(0.4), steps=4) * 0.5")
    >>> print(f"{s(2):.4f}")
    0.1000
    >>> parse_schedule("os.system('ls')")
    Traceback (most recent call last):
    ...
    lrjax._cli.ExpressionError: bad expression at col 1: only lrjax constructors and literals are allowed, got attribute access 'os.system'
  """
  if not isinstance(text, str):
    raise ExpressionError(f"expected a schedule expression (a string), got {text!r}")
  if text.startswith("@"):
    path = text[1:]
    try:
      with open(path, encoding="utf-8") as f:
        text = f.read()
    except OSError as e:
      raise ExpressionError(f"cannot read {path!r}: {e.strerror or e}") from None
  if text.lstrip().startswith("{"):
    return _from_json(text)
  return _from_expression(text)


def _from_json(text: str) -> Schedule:
  try:
    d = json.loads(text)
  except json.JSONDecodeError as e:
    raise ExpressionError(
        f"bad JSON at line {e.lineno} col {e.colno}: {e.msg}"
    ) from None
  try:
    return _registry.from_dict(d)
  except ValueError as e:
    raise ExpressionError(f"bad schedule JSON: {_one_line(e)}") from None


def _from_expression(text: str) -> Schedule:
  # One line, so a column points into what the user typed, wrapped or not.
  text = " ".join(text.split())
  if not text:
    raise ExpressionError("bad expression: empty; expected e.g. 'constant(0.1)'")
  try:
    tree = ast.parse(text, mode="eval")
    value = _Evaluator(text).eval(tree.body)
  except SyntaxError as e:
    raise ExpressionError(
        f"bad expression{_where((e.offset or 1) - 1)}: {e.msg}"
    ) from None
  except (RecursionError, MemoryError):
    raise ExpressionError("bad expression: nested too deeply") from None
  if not isinstance(value, Schedule):
    raise ExpressionError(
        f"bad expression: expected a schedule such as 'constant(0.1)', got "
        f"{value!r}"
    )
  return value


def _where(col: int) -> str:
  return f" at col {col + 1}"


def _one_line(e: BaseException) -> str:
  return " ".join(str(e).split())


def _snippet(text: str, node: ast.AST, limit: int = 40) -> str:
  s = ast.get_source_segment(text, node) or ast.unparse(node)
  s = " ".join(s.split())
  return s if len(s) <= limit else s[: limit - 3] + "..."


class _Evaluator:
  """Evaluates the allowed subset of Python expressions, node by node."""

  def __init__(self, text: str):
    self.text = text

  def fail(self, node: ast.AST, msg: str) -> ExpressionError:
    where = _where(getattr(node, "col_offset", 0))
    return ExpressionError(f"bad expression{where}: {msg}")

  def not_allowed(self, node: ast.AST, what: str) -> ExpressionError:
    return self.fail(
        node,
        "only lrjax constructors and literals are allowed, got "
        f"{what} {_snippet(self.text, node)!r}",
    )

  def eval(self, node: ast.AST) -> Any:
    if isinstance(node, ast.Constant):
      if node.value is None or isinstance(node.value, (bool, int, float, str)):
        return node.value
      raise self.not_allowed(node, f"{type(node.value).__name__} literal")
    if isinstance(node, (ast.List, ast.Tuple)):
      items = [self.eval(e) for e in node.elts]
      return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
      v = self.eval(node.operand)
      if not _is_number(v):
        raise self.fail(node, f"a sign needs a number, got {v!r}")
      return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp):
      return self.binop(node)
    if isinstance(node, ast.Call):
      return self.call(node)
    if isinstance(node, ast.Name):
      if node.id in _registry.names():
        raise self.fail(
            node, f"{node.id!r} is a constructor: call it, e.g. {node.id}(...)"
        )
      raise self.fail(node, f"unknown name {node.id!r}; {_known()}")
    what = _NODE_NAMES.get(type(node), f"{type(node).__name__} expression")
    raise self.not_allowed(node, what)

  def binop(self, node: ast.BinOp) -> Any:
    left, right = self.eval(node.left), self.eval(node.right)
    if isinstance(node.op, ast.Mult):
      if isinstance(left, Schedule) or isinstance(right, Schedule):
        if all(isinstance(v, Schedule) or _is_number(v) for v in (left, right)):
          return self.build(node, "product", lambda: left * right, {})
    ops = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
    sym = ops.get(type(node.op))
    if sym is None:
      raise self.not_allowed(node, "operator")
    if not (_is_number(left) and _is_number(right)):
      allowed = "'*' between schedules and numbers" if sym == "*" else (
          f"'{sym}' between numbers"
      )
      raise self.fail(
          node, f"only {allowed} is allowed, got {_snippet(self.text, node)!r}"
      )
    if sym == "/" and right == 0:
      raise self.fail(node, f"division by zero in {_snippet(self.text, node)!r}")
    if sym == "+":
      return left + right
    if sym == "-":
      return left - right
    return left * right if sym == "*" else left / right

  def call(self, node: ast.Call) -> Schedule:
    if not isinstance(node.func, ast.Name):
      raise self.not_allowed(node.func, _NODE_NAMES.get(type(node.func), "call of"))
    name = node.func.id
    if name not in _registry.names():
      raise self.fail(node.func, f"unknown constructor {name!r}; {_known()}")
    fn = _registry.lookup(name)
    params = inspect.signature(fn).parameters
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    where: dict[str, ast.AST] = {}  # argument name -> its node, for errors
    args = []
    positional = [
        p.name for p in params.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    star = next((p.name for p in params.values() if p.kind is p.VAR_POSITIONAL), None)
    for i, a in enumerate(node.args):
      if isinstance(a, ast.Starred):
        raise self.not_allowed(a, "star unpacking")
      args.append(self.eval(a))
      if i < len(positional):
        where[positional[i]] = a
      elif star is not None:
        where.setdefault(star, a)
      else:
        raise self.fail(
            a,
            f"{name} takes {len(positional)} positional argument"
            f"{'s' if len(positional) != 1 else ''}; pass the others by "
            f"keyword: {_signature(name)}",
        )
    kwargs = {}
    for kw in node.keywords:
      if kw.arg is None:
        raise self.not_allowed(kw, "** unpacking")
      if kw.arg in kwargs:
        raise self.fail(kw, f"{name}: argument {kw.arg!r} given twice")
      p = params.get(kw.arg)
      if not takes_kwargs and (
          p is None or p.kind in (p.VAR_POSITIONAL, p.POSITIONAL_ONLY)
      ):
        raise self.fail(
            kw, f"{name} has no argument {kw.arg!r}; {_signature(name)}"
        )
      if kw.arg in where:
        raise self.fail(kw, f"{name}: argument {kw.arg!r} given twice")
      kwargs[kw.arg] = self.eval(kw.value)
      where[kw.arg] = kw
    return self.build(node, name, lambda: fn(*args, **kwargs), where)

  def build(self, node: ast.AST, name: str, make: Any, where: dict[str, ast.AST]) -> Any:
    try:
      return make()
    except Exception as e:  # pylint: disable=broad-except
      msg = _one_line(e)
      if isinstance(e, TypeError):  # e.g. a missing required argument
        msg = f"{msg}; {_signature(name)}"
      elif not isinstance(e, ValueError):
        msg = f"{name}: {type(e).__name__}: {msg}"
      # "fn: arg must be ...": point at that argument when we can.
      m = re.match(r"\w+: (\w+)", msg)
      at = where.get(m.group(1), node) if m else node
      if not msg.startswith(name):
        msg = f"{name}: {msg}"
      raise self.fail(at, msg) from None


def _is_number(v: Any) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool)


def _known() -> str:
  return "known: " + ", ".join(_registry.names())


def _signature(name: str) -> str:
  return f"usage: {name}{_plain_signature(name)}"


def _plain_signature(name: str) -> str:
  """``(init_value, *, decay_steps, end_value=0.0)``: names and defaults only."""
  parts = []
  star_done = False
  for p in _registry.signature(name).parameters.values():
    if p.kind is p.VAR_POSITIONAL:
      parts.append(f"*{p.name}")
      star_done = True
      continue
    if p.kind is p.KEYWORD_ONLY and not star_done:
      parts.append("*")
      star_done = True
    parts.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}")
  return f"({', '.join(parts)})"


# --- the command line --------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog=_PROG,
      description=(
          "Plot and inspect lrjax learning-rate schedules.\n\n"
          "A SCHEDULE is a call of lrjax constructors with literal arguments,\n"
          "e.g. 'cosine_decay(0.3, warmup_steps=469, decay_steps=13601)' (see\n"
          "'lrjax list'), a JSON dict as printed by 'show --json', or @file.json."
      ),
      epilog=_EXAMPLES,
      formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  parser.add_argument("--version", action="version", version=f"lrjax {lrjax.__version__}")
  sub = parser.add_subparsers(dest="command", metavar="{plot,show,list}")
  sub.required = True

  p = sub.add_parser("plot", help="save a plot of learning rate against step")
  p.add_argument("schedules", nargs="+", metavar="SCHEDULE",
                 help="one or more schedules, drawn on one axes")
  p.add_argument("--steps", type=_positive_int, required=True,
                 help="plot steps 0 .. STEPS-1")
  p.add_argument("-o", "--output", default="schedule.png",
                 help="image file; the suffix picks the format (default: schedule.png)")
  p.add_argument("--log", action="store_true", help="logarithmic learning-rate axis")
  p.add_argument("--label", action="append", dest="labels", metavar="LABEL",
                 help="legend label, once per schedule (default: the call)")
  p.add_argument("--title", default=None, help="plot title")

  s = sub.add_parser("show", help="print a schedule's values, dict or call")
  s.add_argument("schedule", metavar="SCHEDULE",
                 help="an expression, a JSON dict or @file.json")
  what = s.add_mutually_exclusive_group()
  what.add_argument("--at", type=_step_list, metavar="STEPS",
                    help="comma-separated steps, e.g. 0,100,1000: prints 'step  lr' per line")
  what.add_argument("--json", action="store_true",
                    help="print the schedule's dict (lrjax.from_dict rebuilds it)")

  sub.add_parser("list", help="list the schedule constructors and their arguments")
  return parser


def _positive_int(text: str) -> int:
  try:
    n = int(text.replace("_", ""))
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected an integer > 0, got {text!r}") from None
  if n <= 0 or n > _checks.I32_MAX:
    raise argparse.ArgumentTypeError(f"expected an integer > 0, got {text!r}")
  return n


def _step_list(text: str) -> list[int]:
  steps = []
  for part in text.split(","):
    part = part.strip().replace("_", "")
    try:
      t = int(part)
    except ValueError:
      raise argparse.ArgumentTypeError(
          f"expected comma-separated integer steps, e.g. 0,100,1000, got {text!r}"
      ) from None
    if not 0 <= t <= np.iinfo(np.uint32).max:
      raise argparse.ArgumentTypeError(f"steps must be in [0, 2**32), got {t}")
    steps.append(t)
  return steps


def _cmd_plot(args: argparse.Namespace) -> int:
  schedules = [parse_schedule(t) for t in args.schedules]
  labels = args.labels
  if labels is not None and len(labels) != len(schedules):
    raise ExpressionError(
        f"got {len(labels)} --label for {len(schedules)} schedules; give one per schedule"
    )
  from lrjax import _plot  # pylint: disable=import-outside-toplevel

  _plot.require_matplotlib()
  from matplotlib.figure import Figure  # pylint: disable=import-outside-toplevel

  fig = Figure(figsize=(8, 4.5), layout="constrained")
  ax = fig.add_subplot()
  _plot.plot(schedules, args.steps, ax=ax, labels=labels, log=args.log)
  if args.title:
    ax.set_title(args.title)
  fig.savefig(args.output, dpi=120)
  print(f"wrote {args.output}")
  return 0


def _cmd_show(args: argparse.Namespace) -> int:
  sched = parse_schedule(args.schedule)
  if args.json:
    print(json.dumps(sched.to_dict()))
  elif args.at is not None:
    steps = np.asarray(args.at, dtype=np.int64)
    dtype = np.int32 if steps.max() <= _checks.I32_MAX else np.uint32
    values = np.asarray(sched(steps.astype(dtype)))  # one vectorised call
    width = max(len(str(t)) for t in args.at)
    for t, v in zip(args.at, values):
      print(f"{t:>{width}}  {float(v):.6g}")
  else:
    print(repr(sched))
  return 0


def _cmd_list(args: argparse.Namespace) -> int:
  del args
  for name in _registry.names():
    print(f"{name}{_plain_signature(name)}")
  return 0


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the ``lrjax`` command line; returns the exit status.

  Exit status 0 on success, 2 for a bad command line or a bad schedule (with
  one line on stderr), 1 if matplotlib is missing or the image cannot be
  written.

  Args:
    argv: the arguments after the program name (default: ``sys.argv[1:]``).

  Returns:
    The exit status.
  """
  args = _parser().parse_args(argv)
  try:
    return {"plot": _cmd_plot, "show": _cmd_show, "list": _cmd_list}[args.command](args)
  except ValueError as e:  # ExpressionError, or a check in lrjax.plot
    print(f"{_PROG}: {_one_line(e)}", file=sys.stderr)
    return 2
  except (ImportError, OSError) as e:
    print(f"{_PROG}: {_one_line(e)}", file=sys.stderr)
    return 1
