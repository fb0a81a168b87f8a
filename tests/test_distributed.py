"""The example under several processes on this machine (`jax.distributed`, gloo on CPU).

Two processes with one CPU device each train as one process with two devices
does (the same losses and accuracies), only process 0 writes the metrics, a
two-process run killed mid-way and resumed ends with the history of an
uninterrupted one, and every bad setup ends within its time limit with one
``main.py: error:`` line and exit status 2.

Every process is started in its own session, waited for with a time limit and
killed (its whole process group) if it is still running when its test ends.

The runs are 3 epochs (not 2): a run killed when its second epoch is printed
then has a complete checkpoint behind it and an epoch still to train, whatever
the machine's load. The uninterrupted two-process run is a ``--compare`` of
the one schedule (so ``--compare`` is checked under two processes too) and
serves both as the reference of the resume test (a plain run) and as the run
compared with two devices. The runs share a JAX compilation cache (the same
programs, compiled once: it halves their CPU time), and the flag checks that
stop a command before it starts any process or waits on any socket run in
this process.
"""

import contextlib
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "fashion_mnist"
MAIN = EXAMPLE / "main.py"
EPOCHS = 3
# The plateau schedule, so the transform's state is replicated across processes too.
ARGS = ["--schedule", "plateau", "--epochs", str(EPOCHS), "--batch-size", "64",
        "--train-subset", "512", "--test-subset", "256", "--no-progress"]
RUN_TIMEOUT = 240  # s, per process of a training run
SETUP_TIMEOUT = 3  # s, the --timeout of the bad setups that wait for a peer
ERROR_LIMIT = 90  # s, for a bad setup to end (start-up, import, its --timeout, the report)
OUTPUTS = ("metrics.json", "metrics.csv", "plot.png")
COMPARISON = ("comparison.csv", "comparison.md", "comparison.png")
HISTORY_KEYS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "lr_last")

# Put first on the processes' PYTHONPATH: logs every file a process opens for
# writing under $LRJAX_TEST_WATCH, with its --process-id, to $LRJAX_TEST_OPEN_LOG;
# where that file is $LRJAX_TEST_PAUSE, the process then sleeps a minute.
SITECUSTOMIZE = '''
import os, sys, time
_watch, _log = os.environ.get("LRJAX_TEST_WATCH"), os.environ.get("LRJAX_TEST_OPEN_LOG")
_pause = os.environ.get("LRJAX_TEST_PAUSE")
if _watch and _log:
  _fd = os.open(_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
  _id = sys.argv[sys.argv.index("--process-id") + 1] if "--process-id" in sys.argv else "-"
  _writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

  def _hook(event, args):
    if event != "open" or not isinstance(args[0], (str, os.PathLike)):
      return
    path, mode, flags = args
    if (mode and any(c in mode for c in "wxa+")) or (flags and flags & _writes):
      path = os.path.abspath(os.fspath(path))
      if path.startswith(_watch):
        os.write(_fd, f"{_id} {os.getpid()} {path}\\n".encode())
        if path == _pause:
          time.sleep(60)

  sys.addaudithook(_hook)
'''


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("", 0))
    return s.getsockname()[1]


@pytest.fixture(scope="module", autouse=True)
def _compilation_cache(tmp_path_factory):
  global CACHE  # pylint: disable=global-statement
  CACHE = tmp_path_factory.mktemp("jax-cache")
  yield
  CACHE = None


CACHE = None


def _env(tmp: pathlib.Path, devices: int = 1, watch: pathlib.Path | None = None,
         pause: pathlib.Path | None = None) -> dict[str, str]:
  hook = tmp / "hook"
  hook.mkdir(exist_ok=True)
  (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
  env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_", "LRJAX_TEST"))}
  env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
             PYTHONPATH=os.pathsep.join([str(hook), *filter(None, [os.environ.get("PYTHONPATH")])]),
             JAX_COMPILATION_CACHE_DIR=str(CACHE), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1")
  if watch is not None:
    env.update(LRJAX_TEST_WATCH=str(watch), LRJAX_TEST_OPEN_LOG=str(tmp / "opens.log"),
               LRJAX_TEST_PAUSE=str(pause))
  return env


class Proc:
  """A main.py command in its own session, its output in files."""

  def __init__(self, argv: list[str], env: dict[str, str], out: pathlib.Path):
    self.out, self.err = out.with_suffix(".out"), out.with_suffix(".err")
    with open(self.out, "w") as o, open(self.err, "w") as e:
      self.p = subprocess.Popen([sys.executable, str(MAIN), *argv], env=env, stdout=o, stderr=e,
                                stdin=subprocess.DEVNULL, start_new_session=True)

  def wait(self, timeout: float) -> int:
    try:
      return self.p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
      self.kill()
      pytest.fail(f"{self.p.args[2:]} still running after {timeout} s; stderr: "
                  f"{self.err.read_text()[-2000:]}")

  def kill(self) -> None:
    """Kills the command (its whole process group)."""
    if self.p.poll() is None:
      with contextlib.suppress(ProcessLookupError):
        os.killpg(self.p.pid, signal.SIGKILL)
    self.p.wait()

  def stdout(self) -> str:
    return self.out.read_text()

  def stderr(self) -> str:
    return self.err.read_text()


@contextlib.contextmanager
def started(*procs: Proc):
  """Kills whatever of `procs` still runs on the way out."""
  try:
    yield procs
  finally:
    for p in procs:
      p.kill()


def _two_processes(tmp: pathlib.Path, workdir: pathlib.Path, extra: tuple[str, ...] = (),
                   watch: bool = False, pause: pathlib.Path | None = None) -> tuple[Proc, Proc]:
  port = _free_port()
  env = _env(tmp, watch=workdir if watch or pause else None, pause=pause)
  flags = [*ARGS, *extra, "--workdir", str(workdir), "--distributed",
           "--coordinator", f"localhost:{port}", "--num-processes", "2"]
  return tuple(Proc([*flags, "--process-id", str(i)], env, tmp / f"{workdir.name}-{i}")
               for i in range(2))


def _wait_ok(procs, timeout: float = RUN_TIMEOUT) -> None:
  deadline = time.monotonic() + timeout
  for p in procs:
    code = p.wait(max(1.0, deadline - time.monotonic()))
    assert code == 0, f"exit {code}: {p.stderr()[-3000:]}"


def _history(workdir: pathlib.Path) -> list[dict]:
  record = json.loads((workdir / "metrics.json").read_text())
  return [{k: row[k] for k in HISTORY_KEYS} for row in record["history"]]


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
  """An uninterrupted two-process ``--compare plateau``: (the plateau run's
  workdir, process 0's stdout, process 1's, the log of files opened for writing)."""
  tmp = tmp_path_factory.mktemp("two")
  workdir = tmp / "compare"
  with started(*_two_processes(tmp, workdir, ("--compare", "plateau"), watch=True)) as procs:
    _wait_ok(procs)
  return workdir / "plateau", procs[0].stdout(), procs[1].stdout(), (tmp / "opens.log").read_text()


def test_two_processes_train_as_two_devices_and_only_process_0_writes(two_process_run, tmp_path):
  workdir, out0, out1, opens = two_process_run
  record = json.loads((workdir / "metrics.json").read_text())
  assert len(record["devices"]) == 2 and len(record["history"]) == EPOCHS
  assert "on 2 cpu device(s) (2 process(es))" in out0
  assert [int(m) for m in re.findall(r"^Epoch (\d+),", out0, re.M)] == list(range(1, EPOCHS + 1))
  assert "| plateau |" in out0  # the comparison table
  assert not re.search(r"Epoch|==|\|", out1), out1  # only process 0 prints
  writers = {}
  for line in opens.splitlines():
    process_id, _, path = line.split(" ", 2)
    name = re.sub(r"^\.(.+)\.tmp\.\w+$", r"\1", pathlib.Path(path).name)  # written, then renamed
    writers.setdefault(name, set()).add(process_id)
  for name in (*OUTPUTS, *COMPARISON):
    assert writers.get(name) == {"0"}, (name, writers.get(name))
  assert (workdir / "checkpoints" / str(EPOCHS)).is_file()

  # One process with two devices, the same settings.
  one = Proc([*ARGS, "--workdir", str(tmp_path / "one")], _env(tmp_path, devices=2), tmp_path / "one")
  with started(one):
    _wait_ok([one])
  assert "on 2 cpu device(s) (1 process(es))" in one.stdout()
  got, want = _history(workdir), _history(tmp_path / "one")
  for key in HISTORY_KEYS:
    np.testing.assert_allclose([r[key] for r in got], [r[key] for r in want], rtol=1e-6,
                               err_msg=key)
  np.testing.assert_allclose([r["lr"] for r in got], 0.3, rtol=1e-6)  # plateau: no reduction yet


def _wait_for_epoch(procs, epoch: int) -> None:
  """Until process 0 has printed `epoch`'s line, both processes still running."""
  deadline = time.monotonic() + RUN_TIMEOUT
  while not re.search(rf"^Epoch {epoch},", procs[0].stdout(), re.M):
    assert all(p.p.poll() is None for p in procs), procs[0].stderr()[-3000:]
    assert time.monotonic() < deadline, f"the run did not reach epoch {epoch}"
    time.sleep(0.02)


def _finalized_steps(ckpt_dir: pathlib.Path) -> list[int]:
  """The complete checkpoints: the all-digit names (each is written under a
  temporary name, then renamed)."""
  return sorted(int(p.name) for p in ckpt_dir.iterdir() if p.name.isdigit())


def test_killed_two_process_run_resumes_to_the_uninterrupted_history(two_process_run, tmp_path):
  reference, *_ = two_process_run
  workdir = tmp_path / "run"
  procs = _two_processes(tmp_path, workdir)
  with started(*procs):
    _wait_for_epoch(procs, 2)
    for p in procs:  # both at once, mid-run
      os.killpg(p.p.pid, signal.SIGKILL)
  steps = _finalized_steps(workdir / "checkpoints")
  assert steps and steps[-1] in (1, 2), steps
  assert not (workdir / "metrics.json").exists() or len(_history(workdir)) < EPOCHS

  procs = _two_processes(tmp_path, workdir, extra=("--resume",))
  with started(*procs):
    _wait_ok(procs)
  out = procs[0].stdout()
  assert f"Resuming {workdir} after epoch {steps[-1]}" in out, out
  assert [int(m) for m in re.findall(r"^Epoch (\d+),", out, re.M)] == list(range(steps[-1] + 1, EPOCHS + 1))
  assert _history(workdir) == _history(reference)  # bit for bit


def test_sigterm_stops_two_processes_in_one_line_each_and_resume_gives_the_same_history(
    two_process_run, tmp_path):
  """SIGTERM to both commands (as a scheduler preempting a job) while process
  0 is slow to write a checkpoint, so that process 1 has run ahead and waits
  on it inside a step: each stops within seconds with one line and exit status
  143 (process 0, which runs the coordinator, leaves last: the others do not
  see it die), and ``--resume`` ends with the uninterrupted run's history."""
  reference, *_ = two_process_run
  workdir = tmp_path / "run"
  pause = workdir / "checkpoints" / ".2.tmp"  # epoch 2's checkpoint, before it is written
  procs = _two_processes(tmp_path, workdir, pause=pause)
  with started(*procs):
    deadline = time.monotonic() + RUN_TIMEOUT
    while not (log := tmp_path / "opens.log").exists() or f" {pause}\n" not in log.read_text():
      assert all(p.p.poll() is None for p in procs), procs[0].stderr()[-3000:]
      assert time.monotonic() < deadline, "the run did not reach epoch 2's checkpoint"
      time.sleep(0.02)
    time.sleep(2)  # process 1 trains on into epoch 3, and waits for process 0
    for p in procs:
      p.p.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    for p in procs:
      assert p.wait(60) == 143, p.stderr()[-3000:]
      lines = [l for l in p.stderr().splitlines() if l.strip()]
      assert lines == ["main.py: stopped by SIGTERM; run again with --resume to continue from "
                       "the last checkpoint"], p.stderr()[-3000:]
    assert time.monotonic() - t0 < 30
  steps = _finalized_steps(workdir / "checkpoints")
  assert steps and steps[-1] < EPOCHS, steps
  procs = _two_processes(tmp_path, workdir, extra=("--resume",))
  with started(*procs):
    _wait_ok(procs)
  assert f"Resuming {workdir} after epoch {steps[-1]}" in procs[0].stdout()
  assert _history(workdir) == _history(reference)  # bit for bit


def test_processes_that_see_different_checkpoints_stop_with_one_line(two_process_run, tmp_path):
  """A work directory per machine instead of a shared one: each process would
  resume from another checkpoint (or none) and the collectives would not match."""
  reference, *_ = two_process_run
  own = [tmp_path / "host0", tmp_path / "host1"]
  shutil.copytree(reference, own[0])
  own[1].mkdir()
  port, env = _free_port(), _env(tmp_path)
  procs = [Proc([*ARGS, "--resume", "--workdir", str(own[i]), "--distributed", "--coordinator",
                 f"localhost:{port}", "--num-processes", "2", "--process-id", str(i)],
                env, tmp_path / f"p{i}") for i in range(2)]
  with started(*procs):
    for p, i in zip(procs, range(2)):
      code = p.wait(RUN_TIMEOUT)
      lines = p.stderr().strip().splitlines()
      assert code == 1 and len(lines) == 1, (code, p.stderr()[-3000:])
      assert lines[0] == (f"main.py: error: the processes see different checkpoints in "
                          f"{own[i] / 'checkpoints'} (the latest epoch by process, -1 for none: "
                          f"[{EPOCHS}, -1]); the work directory must be one directory that every "
                          "process sees"), lines[0]
  assert _history(own[0]) == _history(reference)  # untouched


# --- bad setups: one line, exit status 2, in bounded time ---------------------


def _one_line_error(p: Proc, pattern: str, limit: float = ERROR_LIMIT) -> None:
  t0 = time.monotonic()
  code = p.wait(limit)
  err = p.stderr()
  lines = [l for l in err.splitlines() if l.strip()]
  assert code == 2, f"exit {code}: {err[-3000:]}"
  assert len(lines) == 1, err[-3000:]
  assert lines[0].startswith("main.py: error: "), lines[0]
  assert re.search(pattern, lines[0]), lines[0]
  assert time.monotonic() - t0 < limit


def _bad(tmp: pathlib.Path, name: str, flags: list[str], devices: int = 1) -> Proc:
  return Proc([*ARGS, "--workdir", str(tmp / name), *flags], _env(tmp, devices), tmp / name)


@pytest.fixture(scope="module")
def main_module():
  sys.path.insert(0, str(EXAMPLE))
  import main  # pylint: disable=import-outside-toplevel
  return main


FLAG_CASES = {  # flags -> what the one line says
    "malformed": (["--coordinator", "localhost", "--num-processes", "2", "--process-id", "0"],
                  r"--coordinator: expected HOST:PORT .*'localhost'"),
    "bad-port": (["--coordinator", "localhost:70000", "--num-processes", "2", "--process-id", "1"],
                 r"--coordinator: expected HOST:PORT .*1\.\.65535"),
    "unresolvable": (["--coordinator", "no-such-host.invalid:1234", "--num-processes", "2",
                      "--process-id", "1"], r"--coordinator: cannot resolve host 'no-such-host.invalid'"),
    "not-this-host": (["--coordinator", "192.0.2.1:1234", "--num-processes", "2", "--process-id", "0"],
                      r"--coordinator: 192.0.2.1 is not an address of this machine"),
    "port-in-use": (["--coordinator", "localhost:{busy}", "--num-processes", "2", "--process-id", "0"],
                    r"--coordinator: port {busy} is in use"),
    "id-range": (["--coordinator", "localhost:1234", "--num-processes", "2", "--process-id", "2"],
                 r"--process-id must be in 0\.\.1 \(--num-processes 2\), got 2"),
    "negative-id": (["--process-id", "-1"], r"--process-id must be in 0\.\.N-1, got -1"),
    "timeout": (["--timeout", "0"], r"--timeout must be an integer >= 1 \(seconds\), got 0"),
    "sweep": (["--sweep-lr", "0.1,0.3"], r"--distributed apply to single runs and --compare, not to --sweep"),
    "find-lr": (["--find-lr"], r"--distributed apply to single runs and --compare, not to .*--find-lr"),
}


@pytest.mark.parametrize("name", list(FLAG_CASES))
def test_bad_multi_process_flags_stop_before_starting(name, main_module, tmp_path, capsys):
  flags, pattern = FLAG_CASES[name]
  with socket.socket() as busy:
    busy.bind(("", 0))
    busy.listen()
    port = busy.getsockname()[1]
    flags = [f.replace("{busy}", str(port)) for f in flags]
    t0 = time.monotonic()
    with pytest.raises(SystemExit) as e:
      main_module.main([*ARGS, "--workdir", str(tmp_path / "run"), "--distributed", *flags])
  assert time.monotonic() - t0 < 10
  assert e.value.code == 2
  lines = capsys.readouterr().err.strip().splitlines()
  assert len(lines) == 1 and re.match(r"\S+: error: ", lines[0]), lines  # prog: sys.argv[0]
  assert re.search(pattern.replace("{busy}", str(port)), lines[0]), lines[0]
  assert not (tmp_path / "run").exists()


def test_multi_process_flags_need_distributed(main_module, tmp_path, capsys):
  with pytest.raises(SystemExit) as e:
    main_module.main([*ARGS, "--workdir", str(tmp_path / "run"), "--coordinator", "localhost:1234",
                      "--timeout", "5"])
  assert e.value.code == 2
  assert re.fullmatch(r"\S+: error: --coordinator, --timeout need --distributed \(see --help\)\n",
                      capsys.readouterr().err)


def test_missing_peer_unreachable_coordinator_and_batch_end_with_one_line(tmp_path):
  timeout = ["--timeout", str(SETUP_TIMEOUT), "--distributed"]
  alone = _bad(tmp_path, "alone", [*timeout, "--num-processes", "2", "--process-id", "0",
                                   "--coordinator", f"localhost:{_free_port()}"])
  nobody = _bad(tmp_path, "nobody", [*timeout, "--num-processes", "2", "--process-id", "1",
                                     "--coordinator", f"localhost:{_free_port()}"])
  # Known only once the runtime is up: 3 devices in all (one process here).
  batch = _bad(tmp_path, "batch", [*timeout, "--num-processes", "1", "--process-id", "0",
                                   "--coordinator", f"localhost:{_free_port()}"], devices=3)
  with started(alone, nobody, batch):
    _one_line_error(alone, rf"not all 2 processes joined the coordinator localhost:\d+ within "
                           rf"--timeout {SETUP_TIMEOUT} s")
    _one_line_error(nobody, rf"cannot reach the coordinator localhost:\d+ within "
                            rf"--timeout {SETUP_TIMEOUT} s")
    _one_line_error(batch, r"batch_size must be a multiple of the 3 devices, got 64")
