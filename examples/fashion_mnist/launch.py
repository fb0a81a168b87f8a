"""Process start-up for the example: one process, or one of several (multi-host).

`add_flags` adds the multi-process flags to the example's parser; `run` calls
the work, in this process, or with ``--distributed`` in a child process that
it watches.

Why a child: `jax.distributed.initialize` waits ``--timeout`` seconds for all
processes to join the coordinator, and when one is missing JAX does not raise,
it aborts the whole process (a native check failure, exit status 134, and a
C++ stack trace). Likewise the coordinator's gRPC server crashes the process
(a segmentation fault) when its port is taken. Python cannot catch either. So
the command checks what it can before starting (``HOST:PORT`` well formed and
resolvable, the port free and the host this machine's for process 0, the
process id in range), then runs itself again as a child, holds the child's
standard error until the runtime is up, and turns an abort during start-up
into one ``main.py: error: ...`` line naming the cause and the timeout (exit
status 2). While it waits it tries a TCP connection to the coordinator, which
tells "the coordinator cannot be reached" from "a peer is missing". After
start-up the child's output passes through as it comes. When a peer dies
mid-run, the next collective fails in the others (gloo: "Connection closed by
peer"): the child prints that traceback and ends at once, rather than wait in
JAX's shutdown barrier for the dead peer's heartbeat timeout (100 s) and then
abort; a native abort later on still becomes one line. The child stops when its parent
dies (a killed job leaves no orphan). The parent forwards SIGTERM and SIGHUP
to it, and kills it `STOP_GRACE` seconds later if it is still running (JAX's
preemption service catches SIGTERM once the runtime is up, so the child would
go on); Ctrl-C reaches both, as one process group, and the parent ignores it
and waits for the child to save and stop.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
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
STOP_GRACE = 10.0  # s after a forwarded SIGTERM/SIGHUP before the child is killed
_CHILD_ENV = "LRJAX_EXAMPLE_CHILD_FDS"  # "<ready fd>,<parent-alive fd>", set in the child
_MAIN = pathlib.Path(__file__).resolve().with_name("main.py")
# A fatal absl log line: "F1201 22:21:56.042941    5240 client.h:80] message".
_FATAL = re.compile(rb"^F\d{4} [\d:.]+\s+\d+ [^\]]+\] ?(.*)$")


def add_flags(parser: argparse.ArgumentParser) -> None:
  """Adds ``--distributed``, ``--coordinator``, ``--num-processes``, ``--process-id``, ``--timeout``."""
  parser.add_argument("--distributed", action="store_true",
                      help="multi-process: call jax.distributed.initialize() first (in a "
                           "watched child process)")
  parser.add_argument("--coordinator", metavar="HOST:PORT",
                      help="with --distributed, where auto-detection does not apply: process "
                           "0's address and a free port")
  parser.add_argument("--num-processes", type=int, metavar="N", help="with --coordinator")
  parser.add_argument("--process-id", type=int, metavar="I", help="with --coordinator: 0 .. N-1")
  parser.add_argument("--timeout", type=int, metavar="SECONDS",
                      help="with --distributed: how long the processes wait for each other at "
                           f"start-up (initialization_timeout; default: {DEFAULT_TIMEOUT})")


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
  multi = [f for f, v in (("--coordinator", args.coordinator), ("--num-processes", args.num_processes),
                          ("--process-id", args.process_id), ("--timeout", args.timeout))
           if v is not None]
  if not args.distributed:
    if multi:
      parser.error(f"{', '.join(multi)} need --distributed")
    work()
    return
  address = check_flags(parser, args)
  if os.environ.get(_CHILD_ENV):
    _child(parser, args, work)
  else:
    sys.exit(_parent(parser, args, list(sys.argv[1:] if argv is None else argv), address))


def parse_address(text: str) -> tuple[str, int]:
  """``HOST:PORT`` (``[IPv6]:PORT`` too) as (host, port).

  Raises:
    ValueError: if `text` is not of that form or the port is not in 1..65535.
  """
  host, sep, port = text.rpartition(":")
  if host.startswith("[") and host.endswith("]"):
    host = host[1:-1]
  if not (sep and host and port.isdigit() and 1 <= int(port) <= 65535):
    raise ValueError(f"--coordinator: expected HOST:PORT with a port in 1..65535, got {text!r}")
  return host, int(port)


def check_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[str, int] | None:
  """Checks the multi-process flags before any process starts.

  Args:
    parser: reports a bad flag (one line, exit status 2).
    args: the parsed flags.

  Returns:
    The coordinator's (host, port), or None where it is auto-detected.

  Raises:
    SystemExit: through `parser.error`, for a malformed or unresolvable
      ``--coordinator``, a process id out of range, a timeout < 1, and, for
      process 0, a coordinator port in use or a host that is not this
      machine (process 0 runs the coordinator there).
  """
  n, i = args.num_processes, args.process_id
  if n is not None and n < 1:
    parser.error(f"--num-processes must be an integer >= 1, got {n}")
  if i is not None and (i < 0 or (n is not None and i >= n)):
    parser.error(f"--process-id must be in 0..{n - 1 if n else 'N-1'}"
                 f"{f' (--num-processes {n})' if n else ''}, got {i}")
  if args.timeout is not None and args.timeout < 1:
    parser.error(f"--timeout must be an integer >= 1 (seconds), got {args.timeout}")
  if args.coordinator is None:
    return None
  try:
    host, port = parse_address(args.coordinator)
  except ValueError as e:
    parser.error(str(e))
  try:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
  except socket.gaierror as e:
    parser.error(f"--coordinator: cannot resolve host {host!r} ({e.strerror})")
  if i == 0 and not os.environ.get(_CHILD_ENV):
    if not any(_can_bind(family, addr[0]) for family, _, _, _, addr in infos):
      parser.error(f"--coordinator: {host} is not an address of this machine, and process 0 "
                   "runs the coordinator there; start process 0 on that host")
    if not _port_free(port):
      parser.error(f"--coordinator: port {port} is in use on this machine (an earlier run "
                   "still up?); choose another port")
  return host, port


def _can_bind(family: int, ip: str) -> bool:
  try:
    with socket.socket(family, socket.SOCK_STREAM) as s:
      s.bind((ip, 0))
  except OSError:
    return False
  return True


def _port_free(port: int) -> bool:
  """Whether the coordinator could listen on ``[::]:port`` (or 0.0.0.0), as gRPC would."""
  for family, ip in ((socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")):
    try:
      with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC does
        s.bind((ip, port))
        s.listen()
      return True
    except OSError as e:
      if family == socket.AF_INET6 and e.errno in (97, 99):  # no IPv6 here: try IPv4
        continue
      return False
  return False


# --- the child: the runtime, then the work -------------------------------------


def _child(parser: argparse.ArgumentParser, args: argparse.Namespace, work: Callable[[], None]) -> None:
  """Starts the runtime, tells the parent it is up, then does the work."""
  ready_fd, alive_fd = (int(x) for x in os.environ.pop(_CHILD_ENV).split(","))
  threading.Thread(target=_exit_with_parent, args=(alive_fd,), daemon=True).start()
  try:
    jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id,
                               initialization_timeout=args.timeout or DEFAULT_TIMEOUT)
  except (ValueError, TypeError, RuntimeError) as e:
    if args.coordinator is None and "coordinator" in str(e):
      parser.error("--distributed: no cluster detected (Cloud TPU, SLURM, Open MPI, Kubernetes, "
                   "...); give --coordinator HOST:PORT --num-processes N --process-id I")
    parser.error(f"--distributed: {e}")
  jax.devices()  # the backends, and with them the global device list, are up
  os.write(ready_fd, b"1")
  os.close(ready_fd)
  try:
    work()
  except Exception:  # pylint: disable=broad-except
    # Most likely a peer died (gloo: "Connection closed by peer"). Exit now:
    # an orderly exit would wait in JAX's shutdown barrier for the dead peer
    # until the heartbeat timeout (100 s), then abort.
    traceback.print_exc()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)  # pylint: disable=protected-access


def _exit_with_parent(fd: int) -> None:
  """Blocks on the parent's pipe; its end (the parent died) ends this process."""
  while os.read(fd, 1):
    pass
  os._exit(1)  # pylint: disable=protected-access


# --- the parent: start the child, watch it, explain its end --------------------


def _parent(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str],
            address: tuple[str, int] | None) -> int:
  """Runs main.py `argv` as a child; returns the exit status to end with."""
  ready_r, ready_w = os.pipe()
  alive_r, alive_w = os.pipe()  # alive_w stays open here until this process ends
  env = dict(os.environ, **{_CHILD_ENV: f"{ready_w},{alive_r}"})
  timeout = args.timeout or DEFAULT_TIMEOUT
  previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
  child = subprocess.Popen([sys.executable, str(_MAIN), *argv], env=env, stderr=subprocess.PIPE,
                           pass_fds=(ready_w, alive_r))
  os.close(ready_w)
  os.close(alive_r)
  # Ignored only now: an ignored SIGINT would stay ignored in the child after exec.
  signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the child too; it stops cleanly
  stopped: list[int] = []

  def stop(signum, frame):
    del frame
    stopped.append(signum)
    child.send_signal(signum)
    # JAX's preemption service catches SIGTERM in the child (it only notes a
    # preemption notice): kill the child if it has not stopped after a while.
    timer = threading.Timer(STOP_GRACE, lambda: child.poll() is None and child.kill())
    timer.daemon = True
    timer.start()

  for s in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(s, stop)

  ready, reached = threading.Event(), threading.Event()
  fatal: list[bytes] = []
  watchers = [threading.Thread(target=lambda: os.read(ready_r, 1) and ready.set()),
              threading.Thread(target=_forward, args=(child.stderr, ready, fatal))]
  if address is not None:
    watchers.append(threading.Thread(target=_probe, args=(address, ready, reached, child)))
  for t in watchers:
    t.daemon = True
    t.start()
  try:
    code = child.wait()
    for t in watchers:
      t.join()
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)
    os.close(alive_w)
    os.close(ready_r)
  if stopped and code < 0:  # killed after the grace period
    sys.stderr.write(f"{parser.prog}: error: stopped by {signal.Signals(stopped[0]).name}\n")
    return 128 + stopped[0]
  return _explain(parser, args, code, ready.is_set(), reached.is_set(), fatal, timeout)


def _probe(address: tuple[str, int], ready: threading.Event, reached: threading.Event,
           child: subprocess.Popen) -> None:
  """Tries to connect to the coordinator until it answers or the child is up or gone."""
  while not ready.is_set() and child.poll() is None:
    try:
      socket.create_connection(address, timeout=1.0).close()
      reached.set()
      return
    except OSError:
      time.sleep(0.25)


def _forward(stream, ready: threading.Event, fatal: list[bytes]) -> None:
  """Copies the child's stderr to ours; holds it until the runtime is up, and
  keeps a fatal native log line (and the stack trace after it) for `_explain`."""
  held: list[bytes] = []
  out = sys.stderr.buffer
  for line in iter(stream.readline, b""):
    m = _FATAL.match(line)
    if m or fatal:
      fatal.append(m.group(1).strip() if m else line)
      continue
    if not ready.is_set():
      held.append(line)
      continue
    out.writelines(held)
    held.clear()
    out.write(line)
    out.flush()
  if held and not (fatal and not ready.is_set()):
    out.writelines(held)
    out.flush()


def _explain(parser: argparse.ArgumentParser, args: argparse.Namespace, code: int, ready: bool,
             reached: bool, fatal: list[bytes], timeout: int) -> int:
  """The exit status for the child's `code`, after one line on what went wrong.

  An abort or crash before the runtime was up: `parser.error` (exit status 2)
  with the cause; a signal later (a peer died and the runtime aborted, or the
  process was killed): one line and 128 + the signal's number; otherwise the
  child's own status, its output already passed on.

  Raises:
    SystemExit: through `parser.error`, for a start-up that failed.
  """
  if code >= 0 and not fatal:
    return code
  prog = parser.prog
  why = fatal[0].decode(errors="replace") if fatal else ""
  if not ready and code in (-signal.SIGABRT, -signal.SIGSEGV):
    if code == -signal.SIGSEGV:  # gRPC's server, when it cannot bind its port
      msg = f"the coordinator could not listen on {args.coordinator} (port in use?)"
    elif args.coordinator and not reached:
      msg = (f"cannot reach the coordinator {args.coordinator} within --timeout {timeout} s: "
             "start process 0 there, with this --coordinator")
    elif args.coordinator:
      msg = (f"not all {args.num_processes or 'N'} processes joined the coordinator "
             f"{args.coordinator} within --timeout {timeout} s: start every process, with the "
             "same --coordinator and --num-processes and its own --process-id")
    else:
      msg = (f"not all processes joined within --timeout {timeout} s (coordinator and "
             "process ids auto-detected): start every process of the job")
    parser.error(f"--distributed: {msg}")
  who = "the process" if args.process_id is None else f"process {args.process_id}"
  if code < 0:
    cause = f" ({why})" if why else ""
    sys.stderr.write(f"{prog}: error: {who} was stopped by {signal.Signals(-code).name}{cause}\n")
    return 128 - code
  sys.stderr.write(f"{prog}: error: {who}: {why}\n")
  return code or 1
