"""Trains LeNet on Fashion-MNIST under lrjax learning-rate schedules.

  python examples/fashion_mnist/main.py --schedule cosine
  python examples/fashion_mnist/main.py --compare none,sqrt,multistep,cosine,plateau

See README.md for the flags and outputs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys

import jax

import data
import train


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


def main(argv: list[str] | None = None) -> None:
  parser = Parser(description=__doc__.splitlines()[0])
  parser.add_argument("--schedule", default="cosine",
                      help=f"one of {', '.join(train.SCHEDULES)}; an lrjax schedule as JSON "
                           "(step-indexed); or @file.json (default: %(default)s)")
  parser.add_argument("--compare", metavar="A,B,...",
                      help="run these schedules (names or @file.json) and compare them")
  parser.add_argument("--epochs", type=int, default=30, help="(default: %(default)s)")
  parser.add_argument("--batch-size", type=int, default=128,
                      help="global batch, split over the devices (default: %(default)s)")
  parser.add_argument("--lr", type=float, default=0.3, help="base rate of the named schedules (default: %(default)s)")
  parser.add_argument("--seed", type=int, default=0, help="initialisation and data order (default: %(default)s)")
  parser.add_argument("--workdir", default="workdir", help="outputs and checkpoints (default: %(default)s)")
  parser.add_argument("--data-dir", help="dataset cache; if not given, $LRJAX_DATA_DIR or "
                                         "~/.cache/lrjax/fashion_mnist")
  parser.add_argument("--train-subset", type=int, metavar="N", help="first N training images")
  parser.add_argument("--test-subset", type=int, metavar="N", help="first N test images")
  parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
  parser.add_argument("--no-progress", action="store_true", help="no progress bar")
  parser.add_argument("--distributed", action="store_true",
                      help="multi-host: call jax.distributed.initialize() first")
  parser.add_argument("--coordinator", metavar="HOST:PORT",
                      help="with --distributed, where auto-detection does not apply")
  parser.add_argument("--num-processes", type=int, metavar="N", help="with --coordinator")
  parser.add_argument("--process-id", type=int, metavar="I", help="with --coordinator")
  args = parser.parse_args(argv)

  if args.distributed:
    jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
  config = train.Config(
      schedule=parse_schedule(parser, args.schedule), epochs=args.epochs,
      batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed,
      data_dir=args.data_dir, train_subset=args.train_subset, test_subset=args.test_subset,
      resume=args.resume, progress=sys.stdout.isatty() and not args.no_progress)
  schedules = {train.schedule_label(config.schedule): config.schedule}
  if args.compare:
    names = [s.strip() for s in args.compare.split(",") if s.strip()]
    labels = [pathlib.Path(s[1:]).stem if s.startswith("@") else s for s in names]
    if len(set(labels)) != len(labels):
      parser.error(f"--compare: each run needs its own name, got {', '.join(labels)}")
    schedules = {label: parse_schedule(parser, s) for label, s in zip(labels, names)}
  try:
    for s in schedules.values():
      train.check_config(dataclasses.replace(config, schedule=s))
  except ValueError as e:
    parser.error(str(e))

  try:
    if args.compare:
      train.compare(config, schedules, args.workdir)
    else:
      train.train_and_evaluate(config, args.workdir)
  except (data.DataError, train.ResumeError) as e:
    sys.exit(f"{parser.prog}: error: {e}")


if __name__ == "__main__":
  main()
