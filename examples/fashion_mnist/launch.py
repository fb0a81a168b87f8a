"""Process start-up for the example: one process, or one of several (multi-host).

`add_flags` adds the multi-process flags to the example's parser; `run` calls
`jax.distributed.initialize` when asked and then the work.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

import jax


def add_flags(parser: argparse.ArgumentParser) -> None:
  """Adds ``--distributed``, ``--coordinator``, ``--num-processes``, ``--process-id``."""
  parser.add_argument("--distributed", action="store_true",
                      help="multi-host: call jax.distributed.initialize() first")
  parser.add_argument("--coordinator", metavar="HOST:PORT",
                      help="with --distributed, where auto-detection does not apply")
  parser.add_argument("--num-processes", type=int, metavar="N", help="with --coordinator")
  parser.add_argument("--process-id", type=int, metavar="I", help="with --coordinator")


def run(parser: argparse.ArgumentParser, args: argparse.Namespace,
        argv: Sequence[str] | None, work: Callable[[], None]) -> None:
  """Initialises JAX's multi-process runtime when ``args.distributed``, then calls `work`."""
  if args.distributed:
    jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
  work()
