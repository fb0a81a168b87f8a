"""Starts the example in one process, or as one of several (``--distributed``).

With ``--distributed``, `run` checks the flags and, given ``--coordinator``,
``--num-processes`` and ``--process-id``, first gathers the processes over
plain sockets on the coordinator's port: process 0 listens there until the
others have connected, then lets them go. Only then is
`jax.distributed.initialize` called: when a peer does not join within its
timeout, it aborts the process (a native check failure, a C++ stack trace),
which Python cannot catch. A missing peer is found by the rendezvous instead,
and reported in one ``main.py: error:`` line (exit status 2). A native abort
after that (a peer gone in the moment between) still ends the process so.
"""

import argparse
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable

import jax

DEFAULT_TIMEOUT = 300  # s, JAX's own default initialization_timeout


def add_flags(parser: argparse.ArgumentParser) -> None:
  """Adds ``--distributed``, ``--coordinator``, ``--num-processes``, ``--process-id``, ``--timeout``."""
  parser.add_argument("--distributed", action="store_true", help="multi-process (jax.distributed)")
  parser.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address, a free port")
  parser.add_argument("--num-processes", type=int, metavar="N", help="with --coordinator")
  parser.add_argument("--process-id", type=int, metavar="I", help="with --coordinator: 0 .. N-1")
  parser.add_argument("--timeout", type=int, metavar="SECONDS", help="how long the processes wait "
                      f"for each other at start-up (default: {DEFAULT_TIMEOUT})")


def run(parser: argparse.ArgumentParser, args: argparse.Namespace,
        work: Callable[[], None]) -> None:
  """Calls `work`: here, or with ``args.distributed`` once the processes have
  met and `jax.distributed` is up.

  Args:
    parser: the command's parser; its `error` reports a bad setup (one line,
      exit status 2).
    args: the parsed flags, those of `add_flags` among them.
    work: what the process does once the runtime is up.
  """
  if not args.distributed:
    given = [f"--{k.replace('_', '-')}" for k in ("coordinator", "num_processes", "process_id",
                                                  "timeout") if getattr(args, k) is not None]
    if given:
      parser.error(f"{', '.join(given)} need --distributed")
    work()
    return
  _check(parser, args)
  try:
    jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id,
                               initialization_timeout=args.timeout or DEFAULT_TIMEOUT)
  except (ValueError, RuntimeError) as e:  # no cluster detected, or a flag missing
    parser.error(f"--distributed: {e} (where no cluster is detected, give --coordinator "
                 "HOST:PORT --num-processes N --process-id I)")
  # JAX's preemption service took SIGTERM: until main.py's handler, it stops the process.
  signal.signal(signal.SIGTERM, signal.SIG_DFL)
  try:
    work()
  except Exception:  # pylint: disable=broad-except
    # Most likely a peer died (gloo: "Connection closed by peer"). Exit now,
    # not after JAX's shutdown barrier has waited for it (100 s) and aborted.
    traceback.print_exc()
    sys.stdout.flush()
    os._exit(1)  # pylint: disable=protected-access


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
  """Stops with `parser.error` on flags out of range, a malformed or
  unresolvable ``--coordinator``, for process 0 (it runs the coordinator) a
  host not this machine's or a port in use; then, given every flag, waits
  until all processes have joined (or stops, at the timeout)."""
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
  host = host[1:-1] if host.startswith("[") and host.endswith("]") else host  # [IPv6]:PORT
  if not (host and port.isdigit() and 1 <= int(port) <= 65535):
    parser.error(f"--coordinator: expected HOST:PORT with a port in 1..65535, "
                 f"got {args.coordinator!r}")
  try:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
  except socket.gaierror as e:
    parser.error(f"--coordinator: cannot resolve host {host!r} ({e.strerror})")
  deadline, missing = time.monotonic() + timeout, (
      f"--distributed: not all {n} processes joined the coordinator {args.coordinator} within "
      f"--timeout {timeout} s: start every process, with the same flags but its own --process-id")
  if i == 0:
    probes = [_try(socket.create_server, (address[0], 0), family=family)
              for family, *_, address in infos]
    for probe in filter(None, probes):
      probe.close()
    if not any(probes):  # no address of the host could be bound here
      parser.error(f"--coordinator: {host} is not an address of this machine; start process 0 "
                   "there, it runs the coordinator")
    # Where gRPC's server will bind: [::], dual-stack (taken on IPv4 or IPv6, it would crash).
    dual = socket.has_dualstack_ipv6()
    if not (server := _try(socket.create_server, ("", int(port)), dualstack_ipv6=dual,
                           family=socket.AF_INET6 if dual else socket.AF_INET)):
      parser.error(f"--coordinator: port {port} is in use on this machine; choose another")
    with server:  # the rendezvous: the others connect, and wait for a byte
      peers = []
      for _ in range((n or 1) - 1):
        server.settimeout(max(0, deadline - time.monotonic()))
        if not (peer := _try(server.accept)):
          parser.error(missing)
        peers.append(peer[0])
    for peer in peers:  # the port is free for JAX's coordinator: let each go, and wait until
      with peer:  # it has closed its end (the first to close would leave a TIME_WAIT on the port)
        peer.settimeout(timeout)
        _try(peer.sendall, b"1")
        _try(peer.recv, 1)
  elif i is not None and n is not None:
    while not (coordinator := _try(socket.create_connection, (host, int(port)), timeout=1)):
      if time.monotonic() > deadline:
        parser.error(f"--distributed: cannot reach the coordinator {args.coordinator} within "
                     f"--timeout {timeout} s: start process 0 there, with this --coordinator")
      time.sleep(0.25)
    with coordinator:  # process 0 waits for the others at most as long
      coordinator.settimeout(timeout)
      if _try(coordinator.recv, 1) != b"1":
        parser.error(missing)


def _try(call: Callable, *args, **kwargs):
  """What `call` (a socket function) returns, or None where it raises `OSError`."""
  try:
    return call(*args, **kwargs)
  except OSError:
    return None
