"""Shared test settings and fixtures: the lrjax package is imported from this
checkout; the documentation site is built once per run."""

import subprocess
import sys
from pathlib import Path

import jax
import pytest

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
