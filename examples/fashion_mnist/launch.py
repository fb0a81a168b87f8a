"""Starts the example in one process, or as one of several (``--distributed``).

With ``--distributed``, `run` checks the flags, then runs main.py again as a
child and watches it: when a peer is missing at ``--timeout``,
`jax.distributed.initialize` aborts the process (a native check failure, a C++
stack trace), which Python cannot catch. The parent holds the child's standard
error until the runtime is up and turns such an abort into one ``main.py:
error:`` line (exit status 2). It passes SIGTERM and SIGHUP on to the child and
ignores Ctrl-C, which reaches the child too; the child ends with the parent.
"""

import argparse
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence

import jax

DEFAULT_TIMEOUT = 300  # s, JAX's own default initialization_timeout
_CHILD_ENV = "LRJAX_EXAMPLE_CHILD_FDS"  # "<socket to the parent>,<the parent's stderr>"
_MAIN = pathlib.Path(__file__).resolve().with_name("main.py")


def add_flags(parser: argparse.ArgumentParser) -> None:
  """Adds ``--distributed``, ``--coordinator``, ``--num-processes``, ``--process-id``, ``--timeout``."""
  parser.add_argument("--distributed", action="store_true", help="multi-process (jax.distributed)")
  parser.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address, a free port")
  parser.add_argument("--num-processes", type=int, metavar="N", help="with --coordinator")
  parser.add_argument("--process-id", type=int, metavar="I", help="with --coordinator: 0 .. N-1")
  parser.add_argument("--timeout", type=int, metavar="SECONDS", help="how long the processes wait "
                      f"for each other at start-up (default: {DEFAULT_TIMEOUT})")


def run(parser: argparse.ArgumentParser, args: argparse.Namespace,
        argv: Sequence[str] | None, work: Callable[[], None]) -> None:
  """Calls `work`: here, or with ``args.distributed`` in a watched child process.

  Args:
    parser: the command's parser; its `error` reports a bad setup (one line,
      exit status 2).
    args: the parsed flags, those of `add_flags` among them.
    argv: the command line without the program (None: ``sys.argv[1:]``); the
      child runs ``main.py`` with it.
    work: what the process does once the runtime is up.
  """
  if not args.distributed:
    given = [f"--{k.replace('_', '-')}" for k in ("coordinator", "num_processes", "process_id",
                                                  "timeout") if getattr(args, k) is not None]
    if given:
      parser.error(f"{', '.join(given)} need --distributed")
    work()
  elif os.environ.get(_CHILD_ENV):
    _child(parser, args, work)
  else:
    _check(parser, args)
    sys.exit(_parent(parser, args, sys.argv[1:] if argv is None else argv))


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
  """Stops with `parser.error` on what would fail once the processes start:
  flags out of range, a malformed or unresolvable ``--coordinator``, for
  process 0 (it runs the coordinator) a host not this machine's or a port in
  use, for another a coordinator that does not answer within the timeout."""
  n, i, timeout = args.num_processes, args.process_id, args.timeout or DEFAULT_TIMEOUT
  if n is not None and n < 1:
    parser.error(f"--num-processes must be an integer >= 1, got {n}")
  if i is not None and (i < 0 or (n is not None and i >= n)):
    parser.error(f"--process-id must be in 0..{n - 1 if n else 'N-1'}"
                 f"{f' (--num-processes {n})' if n else ''}, got {i}")
  if args.timeout is not None and args.timeout < 1:
    parser.error(f"--timeout must be an integer >= 1 (seconds), got {args.timeout}")
  if args.coordinator is None:
    return
  host, _, port = args.coordinator.rpartition(":")
  if host.startswith("[") and host.endswith("]"):  # [IPv6]:PORT
    host = host[1:-1]
  if not (host and port.isdigit() and 1 <= int(port) <= 65535):
    parser.error(f"--coordinator: expected HOST:PORT with a port in 1..65535, "
                 f"got {args.coordinator!r}")
  try:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
  except socket.gaierror as e:
    parser.error(f"--coordinator: cannot resolve host {host!r} ({e.strerror})")
  if i == 0:
    if not any(_succeeds(socket.create_server, (address[0], 0), family=family)
               for family, *_, address in infos):
      parser.error(f"--coordinator: {host} is not an address of this machine; start process 0 "
                   "there, it runs the coordinator")
    # Taken on IPv4, or dual-stack as by gRPC: its server, on [::], would crash.
    if not _succeeds(socket.create_server, ("", int(port))):
      parser.error(f"--coordinator: port {port} is in use on this machine; choose another")
  elif i is not None:
    deadline = time.monotonic() + timeout
    while not _succeeds(socket.create_connection, (host, int(port)), timeout=1):
      if time.monotonic() > deadline:
        parser.error(f"--distributed: cannot reach the coordinator {args.coordinator} within "
                     f"--timeout {timeout} s: start process 0 there, with this --coordinator")
      time.sleep(0.25)


def _succeeds(call: Callable[..., socket.socket], *args, **kwargs) -> bool:
  """Whether a socket call (`socket.create_server`, `socket.create_connection`) succeeds."""
  try:
    call(*args, **kwargs).close()
  except OSError:
    return False
  return True


def _child(parser: argparse.ArgumentParser, args: argparse.Namespace, work: Callable[[], None]) -> None:
  """Starts the runtime, tells the parent, takes over its stderr, does the work."""
  parent, stderr = map(int, os.environ.pop(_CHILD_ENV).split(","))
  threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
  try:
    jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id,
                               initialization_timeout=args.timeout or DEFAULT_TIMEOUT)
  except (ValueError, RuntimeError) as e:  # no cluster detected, or a flag missing
    parser.error(f"--distributed: {e} (where no cluster is detected, give --coordinator "
                 "HOST:PORT --num-processes N --process-id I)")
  # JAX's preemption service took SIGTERM: until main.py's handler, it stops the process.
  signal.signal(signal.SIGTERM, signal.SIG_DFL)
  jax.devices()  # the backends, and with them the global device list, are up
  os.write(parent, b"1")
  os.dup2(stderr, 2)  # from here on straight to the parent's stderr; its read of the pipe ends
  try:
    work()
  except Exception:  # pylint: disable=broad-except
    # Most likely a peer died (gloo: "Connection closed by peer"). Exit now,
    # not after JAX's shutdown barrier has waited for it (100 s) and aborted.
    traceback.print_exc()
    sys.stdout.flush()
    os._exit(1)  # pylint: disable=protected-access


def _exit_with_parent(fd: int) -> None:
  """Reads the socket to the parent, which writes nothing: its end (the parent
  died) ends this process."""
  os.read(fd, 1)
  os._exit(1)  # pylint: disable=protected-access


def _parent(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: Sequence[str]) -> int:
  """Runs main.py `argv` as a child; returns the exit status to end with."""
  ours, theirs = socket.socketpair()
  fds = (theirs.fileno(), os.dup(2))
  child = subprocess.Popen([sys.executable, str(_MAIN), *argv], stderr=subprocess.PIPE,
                           env=dict(os.environ, **{_CHILD_ENV: ",".join(map(str, fds))}), pass_fds=fds)
  theirs.close()
  os.close(fds[1])
  # Ignored only now: an ignored SIGINT would stay ignored in the child after exec.
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  for s in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(s, lambda signum, frame: child.send_signal(signum))
  held = child.stderr.read()  # until the child is up (it then writes to our stderr) or ends
  if ours.recv(1) != b"1" and child.wait() == -signal.SIGABRT:
    parser.error(f"--distributed: not all {args.num_processes or 'the'} processes joined the "
                 f"coordinator {args.coordinator or '(auto-detected)'} within --timeout "
                 f"{args.timeout or DEFAULT_TIMEOUT} s: start every process, with the same "
                 "flags but its own --process-id")
  sys.stderr.buffer.write(held)
  sys.stderr.flush()
  code = child.wait()
  if code < 0:
    sys.stderr.write(f"{parser.prog}: error: stopped by {signal.Signals(-code).name}\n")
    return 128 - code
  return code
