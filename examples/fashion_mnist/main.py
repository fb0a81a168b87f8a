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
import sys

import input_pipeline
import launch
import range_test
import schedules
import sweep
import train
from configs import default


class Parser(argparse.ArgumentParser):
  """An argparse parser whose errors are one line (and exit status 2)."""

  def error(self, message: str):
    self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parse_schedule(parser: Parser, text: str) -> str | dict:
  """A schedule name, a JSON lrjax schedule, or ``@file.json`` holding one."""
  if text.startswith("@"):
    try:
      text = pathlib.Path(text[1:]).read_text()
    except OSError as e:
      parser.error(f"cannot read schedule file {text[1:]!r}: {e.strerror}")
  if not text.lstrip().startswith("{"):
    return text.strip()
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    parser.error(f"malformed schedule JSON: {e}")


def parse_sweep(parser: Parser, text: str) -> list[dict]:
  """A JSON list of lrjax schedule dicts, or ``@file.json`` holding one."""
  if text.startswith("@"):
    try:
      text = pathlib.Path(text[1:]).read_text()
    except OSError as e:
      parser.error(f"cannot read sweep file {text[1:]!r}: {e.strerror}")
  try:
    value = json.loads(text)
  except json.JSONDecodeError as e:
    parser.error(f"--sweep: malformed JSON: {e}")
  if not (isinstance(value, list) and value and all(isinstance(d, dict) for d in value)):
    parser.error("--sweep: expected a non-empty JSON list of lrjax schedule dicts")
  return value


def parse_rates(parser: Parser, text: str) -> list[float]:
  """``0.05,0.1,0.3``: the rates of ``--sweep-lr``."""
  try:
    return [float(x) for x in text.split(",") if x.strip()]
  except ValueError:
    parser.error(f"--sweep-lr: expected numbers separated by commas, got {text!r}")


def main(argv: list[str] | None = None) -> None:
  ref = default.get_config()
  parser = Parser(description=__doc__.splitlines()[0])
  parser.add_argument("--schedule", default=ref.schedule,
                      help=f"one of {', '.join(schedules.SCHEDULES)}; an lrjax schedule as JSON "
                           "(step-indexed); or @file.json (default: %(default)s)")
  what = parser.add_mutually_exclusive_group()
  what.add_argument("--compare", metavar="A,B,...",
                    help="run these schedules (names or @file.json) and compare them")
  what.add_argument("--sweep", metavar="JSON|@file.json",
                    help="train these lrjax schedules (a JSON list of dicts of one kind) "
                         "together in one compiled program")
  what.add_argument("--sweep-lr", metavar="A,B,...",
                    help="train the named --schedule at each of these base rates together")
  what.add_argument("--find-lr", action="store_true",
                    help="run the learning-rate range test (SGD, 1e-5 to 10) instead of training")
  parser.add_argument("--sweep-mode", choices=sweep.MODES, default="auto",
                      help="how a sweep runs its K configurations; auto: threads on CPU, "
                           "vmap elsewhere (default: %(default)s)")
  parser.add_argument("--jobs", default="auto", metavar="N|auto",
                      help="runs of --compare trained at once; auto: 2 on a CPU in one "
                           "process, else 1 (default: %(default)s)")
  parser.add_argument("--find-lr-steps", type=int, default=200, metavar="N",
                      help="batches of the range test (default: %(default)s)")
  parser.add_argument("--epochs", type=int, default=ref.epochs, help="(default: %(default)s)")
  parser.add_argument("--batch-size", type=int, default=ref.batch_size,
                      help="global batch, split over the devices (default: %(default)s)")
  parser.add_argument("--lr", type=float, default=ref.learning_rate,
                      help="base rate of the named schedules (default: %(default)s)")
  parser.add_argument("--momentum", type=float, default=ref.momentum,
                      help="SGD's momentum; 0 is plain SGD (default: %(default)s)")
  parser.add_argument("--seed", type=int, default=ref.seed,
                      help="initialisation and data order (default: %(default)s)")
  parser.add_argument("--conv-impl", choices=default.CONV_IMPLS, default=ref.conv_impl,
                      help="the LeNet's code: xla (nnx.Conv), patches (matrix products, "
                           "fast on CPU); auto: patches on CPU only (default: %(default)s)")
  parser.add_argument("--workdir", default="workdir", help="outputs and checkpoints (default: %(default)s)")
  parser.add_argument("--data-dir", help="dataset cache; if not given, $LRJAX_DATA_DIR or "
                                         "~/.cache/lrjax/fashion_mnist")
  parser.add_argument("--train-subset", type=int, metavar="N", help="first N training images")
  parser.add_argument("--test-subset", type=int, metavar="N", help="first N test images")
  parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
  parser.add_argument("--no-progress", action="store_true", help="no progress bar")
  launch.add_flags(parser)
  args = parser.parse_args(argv)
  one_program = args.sweep or args.sweep_lr or args.find_lr
  if one_program and (args.resume or args.distributed):
    parser.error("--resume and --distributed apply to single runs and --compare, "
                 "not to --sweep, --sweep-lr or --find-lr")
  try:
    args.jobs = sweep.parse_jobs(args.jobs)
  except ValueError as e:
    parser.error(f"--{e}")
  if args.jobs != "auto":
    if not args.compare:
      parser.error("--jobs applies to --compare only")
    if args.jobs > 1 and args.distributed:
      parser.error("--jobs: the runs of a multi-process --compare go one at a time")
  if args.find_lr_steps < 2:
    parser.error(f"--find-lr-steps must be an integer >= 2, got {args.find_lr_steps}")

  def work() -> None:
    config = dataclasses.replace(
        ref, schedule=parse_schedule(parser, args.schedule), epochs=args.epochs,
        batch_size=args.batch_size, learning_rate=args.lr, momentum=args.momentum,
        seed=args.seed, conv_impl=args.conv_impl, data_dir=args.data_dir,
        train_subset=args.train_subset, test_subset=args.test_subset,
        resume=args.resume, progress=sys.stdout.isatty() and not args.no_progress)
    named = {schedules.label(config.schedule): config.schedule}
    if args.compare:
      names = [s.strip() for s in args.compare.split(",") if s.strip()]
      labels = [pathlib.Path(s[1:]).stem if s.startswith("@") else s for s in names]
      if len(set(labels)) != len(labels):
        parser.error(f"--compare: each run needs its own name, got {', '.join(labels)}")
      named = {label: parse_schedule(parser, s) for label, s in zip(labels, names)}
    try:
      for s in named.values():
        train.check_config(dataclasses.replace(config, schedule=s))
      configs = None
      if args.sweep:
        configs = sweep.dict_sweep(config, parse_sweep(parser, args.sweep))
      elif args.sweep_lr:
        configs = sweep.lr_sweep(config, parse_rates(parser, args.sweep_lr))
      if configs:
        sweep.stack_plans(configs)
    except ValueError as e:
      parser.error(str(e))

    try:
      if args.find_lr:
        range_test.find_lr(config, args.workdir, num_steps=args.find_lr_steps)
      elif configs:
        sweep.sweep(configs, args.workdir, mode=args.sweep_mode)
      elif args.compare:
        sweep.compare(config, named, args.workdir, jobs=args.jobs)
      else:
        train.train_and_evaluate(config, args.workdir)
    except (input_pipeline.DataError, train.ResumeError) as e:
      sys.exit(f"{parser.prog}: error: {e}")
    except KeyboardInterrupt:  # every checkpoint written is complete (train_and_evaluate's close)
      hint = "" if one_program else "; run again with --resume to continue from the last checkpoint"
      print(f"{parser.prog}: interrupted{hint}", file=sys.stderr, flush=True)
      sys.exit(130)

  launch.run(parser, args, argv, work)


if __name__ == "__main__":
  main()
