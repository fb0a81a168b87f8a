"""Trains LeNet on Fashion-MNIST under lrjax learning-rate schedules.

  python examples/fashion_mnist/main.py --schedule cosine
  python examples/fashion_mnist/main.py --compare none,sqrt,multistep,cosine,plateau
  python examples/fashion_mnist/main.py --schedule cosine --sweep-lr 0.05,0.1,0.3,0.5
  python examples/fashion_mnist/main.py --find-lr

See README.md for the flags and outputs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import signal
import sys

import branch
import compare
import input_pipeline
import launch
import range_test
import reporting
import schedules
import sweep
import train
from configs import default


class Parser(argparse.ArgumentParser):
  """An argparse parser whose errors are one line (and exit status 2)."""

  def error(self, message: str):
    self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class Terminated(KeyboardInterrupt):
  """SIGTERM (a scheduler's preemption), handled as Ctrl-C is."""


def parse_json(parser: Parser, text: str, what: str, *, plain_name: bool = False):
  """JSON, or ``@file.json`` holding it; with `plain_name`, text that is not
  a JSON object is returned as a name."""
  if text.startswith("@"):
    try:
      text = pathlib.Path(text[1:]).read_text()
    except OSError as e:
      parser.error(f"cannot read {what} file {text[1:]!r}: {e.strerror}")
  if plain_name and not text.lstrip().startswith("{"):
    return text.strip()
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    parser.error(f"malformed {what} JSON: {e}")


def parse_schedule(parser: Parser, text: str) -> str | dict:
  """A schedule name, a JSON lrjax schedule, or ``@file.json`` holding one."""
  return parse_json(parser, text, "schedule", plain_name=True)


def parse_numbers(parser: Parser, flag: str, text: str, kind=float) -> list:
  """``0.05,0.1,0.3``: the values of a comma-separated flag."""
  try:
    return [kind(x) for x in text.split(",") if x.strip()]
  except ValueError:
    parser.error(f"{flag}: expected numbers separated by commas, got {text!r}")


# Config field -> its flag and help; the flag's type and default come from `default.get_config`.
CONFIG_FLAGS = {
    "schedule": ("--schedule", f"one of {', '.join(schedules.SCHEDULES)}; an lrjax schedule as "
                 "JSON (step-indexed); or @file.json"),
    "epochs": ("--epochs", "epochs to train"),
    "batch_size": ("--batch-size", "global batch, split over the devices"),
    "learning_rate": ("--lr", "base rate of the named schedules"),
    "optimizer": ("--optimizer", "sgd or adamw"),
    "momentum": ("--momentum", "SGD's momentum; 0 is plain SGD"),
    "weight_decay": ("--weight-decay", f"AdamW's (default: {default.ADAMW_WEIGHT_DECAY})"),
    "seed": ("--seed", "initialisation and data order"),
    "conv_impl": ("--conv-impl", "the LeNet's code: xla (nnx.Conv), patches (fast on CPU); auto: "
                  "patches on CPU only"),
    "data_dir": ("--data-dir", "dataset cache (default: $LRJAX_DATA_DIR, else "
                 "~/.cache/lrjax/fashion_mnist)"),
    "train_subset": ("--train-subset", "first N training images"),
    "test_subset": ("--test-subset", "first N test images"),
}
CHOICES = {"optimizer": default.OPTIMIZERS, "conv_impl": default.CONV_IMPLS}


def make_parser() -> Parser:
  """The command line: the config's flags (`CONFIG_FLAGS`), the modes and their settings."""
  ref = default.get_config()
  parser = Parser(description=__doc__.splitlines()[0])
  add = parser.add_argument
  for field in dataclasses.fields(ref):
    if field.name in CONFIG_FLAGS:
      flag, text = CONFIG_FLAGS[field.name]
      kind = next((t for t in (int, float) if t.__name__ in field.type), str)
      value = getattr(ref, field.name)
      add(flag, dest=field.name, type=kind, default=value, choices=CHOICES.get(field.name),
          help=text if value is None else f"{text} (default: %(default)s)")
  what = parser.add_mutually_exclusive_group()
  what.add_argument("--compare", metavar="A,B,...",
                    help="run these schedules (names or @file.json) and compare them")
  what.add_argument("--sweep", metavar="JSON|@file.json", help="train these lrjax schedules "
                    "(a JSON list of dicts of one kind) together")
  what.add_argument("--sweep-lr", metavar="A,B,...",
                    help="train the named --schedule at each of these base rates together")
  what.add_argument("--find-lr", action="store_true",
                    help="run the learning-rate range test (1e-5 to 10) instead of training")
  what.add_argument("--branch", metavar="E1,E2,...", help="train to the last of these epochs "
                    "and, from each, a cooldown branch of --cooldown-epochs, together")
  add("--cooldown-epochs", type=int, metavar="N", help="each --branch's length in epochs")
  add("--cooldown-shape", choices=branch.SHAPES, default="1-sqrt", help="(default: %(default)s)")
  add("--sweep-mode", choices=sweep.MODES, default="auto",
      help="how a sweep runs its K configurations; auto: threads on CPU, vmap elsewhere")
  add("--jobs", default="auto", metavar="N|auto", help="runs of --compare trained at once; "
      "auto: 2 on a CPU in one process, else 1 (default: %(default)s)")
  add("--find-lr-steps", type=int, default=200, metavar="N", help="batches of the range test")
  add("--workdir", default="workdir", help="outputs and checkpoints (default: %(default)s)")
  add("--resume", action="store_true", help="continue from the last checkpoint that restores")
  add("--no-progress", action="store_true", help="no progress bar")
  launch.add_flags(parser)
  return parser


def main(argv: list[str] | None = None) -> None:
  parser = make_parser()
  args = parser.parse_args(argv)
  if (args.sweep or args.sweep_lr or args.find_lr or args.branch) and (
      args.resume or args.distributed):
    parser.error("--resume and --distributed apply to single runs and --compare, "
                 "not to --sweep, --sweep-lr, --find-lr or --branch")
  if (args.branch is None) != (args.cooldown_epochs is None):
    parser.error("--branch and --cooldown-epochs go together")
  try:
    args.jobs = compare.parse_jobs(args.jobs)
  except ValueError as e:
    parser.error(f"--{e}")
  if args.jobs != "auto" and not args.compare:
    parser.error("--jobs applies to --compare only")
  if args.jobs != "auto" and args.jobs > 1 and args.distributed:
    parser.error("--jobs: the runs of a multi-process --compare go one at a time")
  if args.find_lr_steps < 2:
    parser.error(f"--find-lr-steps must be an integer >= 2, got {args.find_lr_steps}")
  launch.run(parser, args, argv, lambda: work(parser, args))


def configure(parser: Parser, args: argparse.Namespace):
  """The run's config and, for the modes that have them, its named schedules or
  sweep configurations, checked (one line and exit 2 for a bad one)."""
  config = default.Config(**{k: getattr(args, k) for k in CONFIG_FLAGS}, resume=args.resume,
                          progress=sys.stdout.isatty() and not args.no_progress)
  config = dataclasses.replace(config, schedule=parse_schedule(parser, config.schedule))
  named = {reporting.schedule_label(config.schedule): config.schedule}
  if args.compare:
    names = [s.strip() for s in args.compare.split(",") if s.strip()]
    labels = [pathlib.Path(s[1:]).stem if s.startswith("@") else s for s in names]
    if len(set(labels)) != len(labels):
      parser.error(f"--compare: each run needs its own name, got {', '.join(labels)}")
    named = {label: parse_schedule(parser, s) for label, s in zip(labels, names)}
  configs, points = {}, []
  try:
    if args.branch is not None:
      points = parse_numbers(parser, "--branch", args.branch, int)
      branch.check_branches(points, args.cooldown_epochs, config.epochs)
    for s in named.values():
      train.check_config(dataclasses.replace(config, schedule=s))
    if args.sweep:
      dicts = parse_json(parser, args.sweep, "sweep")
      if not (isinstance(dicts, list) and dicts and all(isinstance(d, dict) for d in dicts)):
        parser.error("--sweep: expected a non-empty JSON list of lrjax schedule dicts")
      configs = sweep.dict_sweep(config, dicts)
    elif args.sweep_lr:
      configs = sweep.lr_sweep(config, parse_numbers(parser, "--sweep-lr", args.sweep_lr))
    for c in configs.values():
      train.check_config(c)
    if configs:
      sweep.check_sweep(configs, train.steps_per_epoch(config))
  except ValueError as e:
    parser.error(str(e))
  return config, named, configs, points


def work(parser: Parser, args: argparse.Namespace) -> None:
  """Configures, checks the work directory, runs the mode; a failure is one line."""
  config, named, configs, points = configure(parser, args)
  try:
    reporting.check_writable(pathlib.Path(args.workdir))
  except reporting.OutputError as e:
    parser.error(str(e))

  def terminate(signum, frame):
    raise Terminated

  signal.signal(signal.SIGTERM, terminate)
  prog, rows, name = parser.prog, [], ""
  try:
    if args.find_lr:
      range_test.find_lr(config, args.workdir, num_steps=args.find_lr_steps)
    elif configs:
      rows, name = sweep.sweep(configs, args.workdir, mode=args.sweep_mode).rows, "configuration"
    elif points:
      rows, name = branch.branch(config, points, args.cooldown_epochs, args.workdir,
                                 shape=args.cooldown_shape, mode=args.sweep_mode), "branch"
    elif args.compare:
      rows, name = compare.compare(config, named, args.workdir, jobs=args.jobs), "schedule"
    else:
      result = train.train_and_evaluate(config, args.workdir)
      if result.diverged:
        sys.exit(f"{prog}: error: {result.failure}")
  except (input_pipeline.DataError, reporting.ResumeError, reporting.OutputError) as e:
    sys.exit(f"{prog}: error: {e}")
  except KeyboardInterrupt as e:  # every checkpoint written is complete
    what = "stopped by SIGTERM" if isinstance(e, Terminated) else "interrupted"
    hint = "" if (configs or points or args.find_lr) else (
        "; run again with --resume to continue from the last checkpoint")
    print(f"{prog}: {what}{hint}", file=sys.stderr, flush=True)
    sys.exit(143 if isinstance(e, Terminated) else 130)
  failed = [(r[name], r["diverged"]) for r in rows if r["diverged"]]
  if failed:
    sys.exit(f"{prog}: error: {len(failed)} of {len(rows)} runs diverged (" + ", ".join(
        f"{run} at epoch {e}" for run, e in failed) + "); the others ran to the end. "
        "Try a lower --lr (--find-lr suggests one)")


if __name__ == "__main__":
  main()
