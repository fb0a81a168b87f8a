"""Shared test settings and fixtures: the lrjax package is imported from this
checkout; the documentation site is built once per run; compiled programs are
kept for the run in a JAX compilation cache that the commands the tests start
share (the example's many short runs compile the same train step)."""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

if "JAX_COMPILATION_CACHE_DIR" not in os.environ:  # read when jax is imported
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="lrjax-tests-jax-cache-")
  atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)

import jax  # noqa: E402  pylint: disable=wrong-import-position
import pytest  # noqa: E402  pylint: disable=wrong-import-position

# Tests run on the CPU whatever the machine has, so results are comparable.
jax.config.update("jax_platforms", "cpu")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
  """The documentation site, built as the README says (-W: any warning, a
  broken reference or a bad docstring, fails the build); its HTML folder."""
  out = tmp_path_factory.mktemp("site")
  cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-j", "1", "-E", "-q",
         "-b", "html", "-d", str(out / "doctrees"), str(ROOT / "docs"), str(out / "html")]
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, f"sphinx failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
  return out / "html"
