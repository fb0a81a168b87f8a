"""Trains LeNet on Fashion-MNIST under lrjax learning-rate schedules.

  python examples/fashion_mnist/main.py --schedule cosine
  python examples/fashion_mnist/main.py --compare none,sqrt,multistep,cosine,plateau
  python examples/fashion_mnist/main.py --schedule cosine --sweep-lr 0.05,0.1,0.3,0.5
  python examples/fashion_mnist/main.py --find-lr

See README.md for the flags and outputs.
"""

import _thread
import argparse
import dataclasses
import json
import os
import pathlib
import signal
import sys
import threading
import time

import jax

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


PEERS_TIMEOUT = 10  # s, for the other processes of a run to stop too


class Parser(argparse.ArgumentParser):
  """An argparse parser whose errors are one line (and exit status 2)."""

  def error(self, message: str):
    self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class Terminated(KeyboardInterrupt):
  """SIGTERM (a scheduler's preemption), handled as Ctrl-C is."""


def parse_schedule(parser: Parser, text: str, what: str = "schedule"):
  """A schedule name, else JSON (an lrjax schedule, a sweep's list of them)
  given inline or, as ``@file.json``, in a file."""
  text = text.strip()
  if not text.startswith(("{", "[", "@")):
    return text
  try:
    return json.loads(pathlib.Path(text[1:]).read_text() if text.startswith("@") else text)
  except OSError as e:
    parser.error(f"cannot read {what} file {text[1:]!r}: {e.strerror}")
  except json.JSONDecodeError as e:
    parser.error(f"malformed {what} JSON: {e}")


def parse_numbers(text: str, kind=float) -> list:
  """``0.05,0.1,0.3``: the values of a comma-separated flag (an argparse type)."""
  try:
    return [kind(x) for x in text.split(",") if x.strip()]
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}")


def make_parser() -> Parser:
  """The flags: the config's (defaults from `default.get_config`), the modes', the processes'."""
  parser = Parser(description=__doc__.splitlines()[0],
                  epilog=f"Defaults: the reference experiment, {default.get_config()}.")
  add = parser.add_argument
  add("--schedule", type=lambda text: parse_schedule(parser, text),
      help=f"one of {', '.join(schedules.SCHEDULES)}; an lrjax schedule as JSON; or @file.json")
  add("--epochs", type=int)
  add("--batch-size", type=int, help="the global batch, split over the devices")
  add("--lr", dest="learning_rate", type=float, help="the base rate of the named schedules")
  add("--optimizer", choices=default.OPTIMIZERS)
  add("--momentum", type=float, help="SGD's; 0 is plain SGD")
  add("--weight-decay", type=float, help=f"AdamW's; None: {default.ADAMW_WEIGHT_DECAY}")
  add("--seed", type=int, help="initialisation and data order")
  add("--conv-impl", choices=default.CONV_IMPLS, help="auto: patches on CPU, else xla (nnx.Conv)")
  add("--data-dir", help="the dataset cache; None: $LRJAX_DATA_DIR or ~/.cache/lrjax/fashion_mnist")
  add("--train-subset", type=int, metavar="N", help="the first N training images")
  add("--test-subset", type=int, metavar="N", help="the first N test images")
  add("--resume", action="store_true", help="continue from the last checkpoint that restores")
  parser.set_defaults(**dataclasses.asdict(default.get_config()))
  mode = parser.add_mutually_exclusive_group()
  mode.add_argument("--compare", metavar="A,B,...", help="compare these schedules (or @file.json)")
  mode.add_argument("--sweep", metavar="JSON|@file.json",
                    type=lambda text: parse_schedule(parser, text, "sweep"),
                    help="train these lrjax schedules (a JSON list of dicts of one kind) together")
  mode.add_argument("--sweep-lr", metavar="A,B,...", type=parse_numbers,
                    help="train the named --schedule at these base rates together")
  mode.add_argument("--find-lr", action="store_true", help="the range test: rates 1e-5 to 10")
  mode.add_argument("--branch", metavar="E1,E2,...", type=lambda text: parse_numbers(text, int),
                    help="train to the last epoch E_i and, from each, a cooldown branch, together")
  add("--cooldown-epochs", type=int, metavar="N", help="each --branch's length in epochs")
  add("--cooldown-shape", choices=branch.SHAPES, default="1-sqrt", help="(default: %(default)s)")
  add("--sweep-mode", choices=sweep.MODES, default="auto", help="auto: threads on CPU, else vmap")
  add("--jobs", default="auto", metavar="N|auto",
      help="runs of --compare trained at once; auto: 2 on a CPU in one process, else 1")
  add("--find-lr-steps", type=int, default=200, metavar="N", help="batches (default: %(default)s)")
  add("--workdir", default="workdir", help="outputs and checkpoints (default: %(default)s)")
  add("--no-progress", action="store_true", help="no progress bar")
  launch.add_flags(parser)
  return parser


def resumable(args: argparse.Namespace) -> bool:
  """Whether ``--resume`` applies to the mode: a single run or ``--compare``."""
  return (args.sweep, args.sweep_lr, args.branch) == (None, None, None) and not args.find_lr


def main(argv: list[str] | None = None) -> None:
  """Parses and checks the flags; runs `work` (with ``--distributed``, once the processes have met)."""
  parser = make_parser()
  args = parser.parse_args(argv)
  if not resumable(args) and (args.resume or args.distributed):
    parser.error("--resume and --distributed apply to single runs and --compare, "
                 "not to --sweep, --sweep-lr, --find-lr or --branch")
  if (args.branch is None) != (args.cooldown_epochs is None):
    parser.error("--branch and --cooldown-epochs go together")
  if args.jobs != "auto":
    if not args.compare:
      parser.error("--jobs applies to --compare only")
    try:
      args.jobs = compare.resolve_jobs(args.jobs)
    except ValueError as e:
      parser.error(f"--{e}")
    if args.jobs > 1 and args.distributed:
      parser.error("--jobs: the runs of a multi-process --compare go one at a time")
  if args.find_lr_steps < 2:
    parser.error(f"--find-lr-steps must be an integer >= 2, got {args.find_lr_steps}")
  launch.run(parser, args, lambda: work(parser, args))


def work(parser: Parser, args: argparse.Namespace) -> None:
  """Checks the settings and the work directory, runs the mode; a failure is one line."""
  flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(default.Config)}
  config = default.Config(**flags | {"progress": sys.stdout.isatty() and not args.no_progress})
  named = {reporting.schedule_label(config.schedule): config.schedule}
  if args.compare:
    names = [s.strip() for s in args.compare.split(",") if s.strip()]
    labels = [pathlib.Path(s[1:]).stem if s.startswith("@") else s for s in names]
    if not labels or len(set(labels)) != len(labels):
      parser.error(f"--compare: each run needs its own name, got {', '.join(labels) or 'none'}")
    named = {label: parse_schedule(parser, s) for label, s in zip(labels, names)}
  try:
    configs = None  # a sweep's
    if args.sweep is not None:
      if not (isinstance(args.sweep, list) and args.sweep
              and all(isinstance(d, dict) for d in args.sweep)):
        parser.error("--sweep: expected a non-empty JSON list of lrjax schedule dicts")
      configs = sweep.dict_sweep(config, args.sweep)
    elif args.sweep_lr is not None:
      configs = sweep.lr_sweep(config, args.sweep_lr)
    elif args.branch is not None:
      branch.check_branches(args.branch, args.cooldown_epochs, config.epochs)
    runs = configs or {n: dataclasses.replace(config, schedule=s) for n, s in named.items()}
    for c in runs.values():
      train.check_config(c)
    if configs is not None:
      sweep.check_sweep(configs, train.steps_per_epoch(config))
    reporting.check_writable(pathlib.Path(args.workdir))
  except (ValueError, reporting.OutputError) as e:
    parser.error(str(e))

  stopping = []  # the interrupt being handled: any later one is dropped

  def interrupt(signum, frame):
    if not stopping:
      raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt

  def again(signum):
    time.sleep(0.1)
    _thread.interrupt_main(signum)

  def lost(unraisable):  # an interrupt raised in a gc callback or a finalizer is lost there:
    e = unraisable.exc_value  # raise it again in a moment (a bare thread: nothing to wait for here)
    if isinstance(e, KeyboardInterrupt):
      _thread.start_new_thread(again, (signal.SIGTERM if isinstance(e, Terminated) else signal.SIGINT,))
    else:
      sys.__unraisablehook__(unraisable)

  def leave(signum):  # one line; then no teardown: with steps in flight it can crash XLA (SIGSEGV)
    what = "stopped by SIGTERM" if signum == signal.SIGTERM else "interrupted"
    if resumable(args):
      what += "; run again with --resume to continue from the last checkpoint"
    print(f"{parser.prog}: {what}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    if args.distributed:  # with the peers: process 0 runs the coordinator, and leaving first it
      peers = threading.Thread(target=jax.distributed.shutdown, daemon=True)  # would end them by
      peers.start()  # JAX's fatal errors; but not waiting for a peer that goes on
      peers.join(PEERS_TIMEOUT)
    os._exit(128 + signum)

  def woken(fd):  # with peers, from a thread: the main thread may be waiting on one that has left
    while (signum := os.read(fd, 1)[0]) not in (signal.SIGINT, signal.SIGTERM):
      pass
    leave(signum)

  if args.distributed:  # first: a signal that the main thread takes must reach `woken` too
    fd, wake = os.pipe()
    os.set_blocking(wake, False)
    signal.set_wakeup_fd(wake)  # each signal's number, written at once by whichever thread takes it
    threading.Thread(target=woken, args=(fd,), daemon=True).start()
  sys.unraisablehook = lost
  for signum in (signal.SIGINT, signal.SIGTERM):
    signal.signal(signum, interrupt)
  prog, rows, key = parser.prog, [], ""
  try:
    if args.find_lr:
      range_test.find_lr(config, args.workdir, num_steps=args.find_lr_steps)
    elif configs is not None:
      rows, key = sweep.sweep(configs, args.workdir, mode=args.sweep_mode).rows, "configuration"
    elif args.branch is not None:
      rows, key = branch.branch(config, args.branch, args.cooldown_epochs, args.workdir,
                                shape=args.cooldown_shape, mode=args.sweep_mode), "branch"
    elif args.compare:
      rows, key = compare.compare(config, named, args.workdir, jobs=args.jobs), "schedule"
    else:
      result = train.train_and_evaluate(config, args.workdir)
      if result.diverged:
        sys.exit(f"{prog}: error: {result.failure}")
  except (input_pipeline.DataError, reporting.ResumeError, reporting.OutputError) as e:
    sys.exit(f"{prog}: error: {e}")
  except KeyboardInterrupt as e:  # every checkpoint written is complete
    stopping.append(e)
    if args.distributed:
      threading.Event().wait()  # `woken` is leaving
    leave(signal.SIGTERM if isinstance(e, Terminated) else signal.SIGINT)
  failed = [f"{r[key]} at epoch {r['diverged']}" for r in rows if r["diverged"]]
  if failed:
    sys.exit(f"{prog}: error: {len(failed)} of {len(rows)} runs diverged ({', '.join(failed)}); "
             "the others ran to the end. Try a lower --lr (--find-lr suggests one)")


if __name__ == "__main__":
  main()
