"""The documentation site: it builds with no warning, every public name has an
API entry, the guides' code runs and prints what the pages say, and every lrjax
call written in the pages uses the real keyword arguments."""

from __future__ import annotations

import ast
import contextlib
import html
import inspect
import io
import re
from pathlib import Path

import pytest

import lrjax

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

# Pages whose ```python blocks run as they stand (one namespace per page, in
# order, as a reader would paste them). Fragments that need a model or a
# checkpoint directory are written as ```{code-block} python and do not run.
RUNNABLE_PAGES = ["index.md", "getting_started.md", "reduce_on_plateau.md", "inside_optax.md"]

# `site` (the one Sphinx build, with -W) is a fixture of conftest.py, shared
# with test_docs_browser.py.


def test_site_builds_every_page(site):
  pages = sorted(p.stem for p in DOCS.glob("*.md")) + sorted(p.stem for p in DOCS.glob("*.rst"))
  assert {"index", "getting_started", "schedules", "reduce_on_plateau", "inside_optax", "porting",
          "fashion_mnist", "benchmarks", "cli", "api"} <= set(pages)
  for page in pages:
    assert (site / f"{page}.html").is_file(), page
  # The gallery pictures and the example's plot are in the site.
  images = {p.name for p in (site / "_images").iterdir()}
  for png in sorted(DOCS.glob("gallery_*.png")) + [DOCS / "fashion_mnist_comparison.png"]:
    assert png.name in images, png.name


def test_every_public_name_has_an_api_entry(site):
  from sphinx.util.inventory import InventoryFile

  with open(site / "objects.inv", "rb") as f:
    inv = InventoryFile.load(f, "", lambda base, uri: uri)
  # Sphinx 8.2+ returns an _Inventory with .data; older ones a plain dict.
  data = getattr(inv, "data", inv)
  entries: dict[str, str] = {}
  for kind, objects in data.items():
    if kind.startswith("py:"):
      for name, item in objects.items():
        uri = item[2] if isinstance(item, tuple) else item.uri
        entries[name] = uri
  names = list(lrjax.__all__)
  assert len(names) >= 25
  missing = [n for n in names if f"lrjax.{n}" not in entries]
  assert not missing, f"no API entry for {missing}"
  not_on_api = [n for n in names if not entries[f"lrjax.{n}"].startswith("api.html#")]
  assert not not_on_api, not_on_api
  api_html = (site / "api.html").read_text()
  for n in names:
    assert f'id="lrjax.{n}"' in api_html, n


def test_included_readmes_and_cli_output_are_in_the_site(site):
  example = (site / "fashion_mnist.html").read_text()
  bench = (site / "benchmarks.html").read_text()
  cli = (site / "cli.html").read_text()
  # A line of each included README, read from the README itself.
  for readme, page in [(ROOT / "examples/fashion_mnist/README.md", example),
                       (ROOT / "benchmarks/README.md", bench)]:
    headings = [l[3:].strip() for l in readme.read_text().splitlines() if l.startswith("## ")]
    assert headings, readme
    for h in headings:
      plain = re.sub(r"[`*]", "", h)
      assert plain in re.sub(r"<[^>]+>", "", page), (readme.name, h)
  # The sections of the front page that the site takes: their tables' first rows.
  readme = (ROOT / "README.md").read_text().split("\n")
  for title, page in [("## Results", example), ("## Benchmarks", bench)]:
    start = next(i for i, l in enumerate(readme) if l.startswith(title))
    rows = [l for l in readme[start:] if l.startswith("|") and not l.startswith("|---")]
    assert len(rows) >= 2, title
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    for cell in rows[1].strip("|").split("|"):
      plain = re.sub(r"[`*]", "", cell).strip().replace("'", "’")
      assert plain in text, (title, plain)
  # The CLI page shows what the command prints: every constructor it lists.
  for name in _constructors():
    assert f"{name}(" in cli, name


def _constructors() -> list[str]:
  """The schedule constructors, as `lrjax list` prints them."""
  from lrjax.__main__ import main

  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    assert main(["list"]) == 0
  return [l.split("(")[0].strip() for l in out.getvalue().splitlines() if "(" in l]


def test_schedules_page_shows_every_constructor_and_picture(site):
  page = (site / "schedules.html").read_text()
  names = _constructors()
  assert len(names) >= 20
  missing = [n for n in names if f'href="api.html#lrjax.{n}"' not in page]
  assert not missing, f"no formula on the schedules page for {missing}"
  source = (DOCS / "schedules.rst").read_text()
  pictures = sorted(p.name for p in DOCS.glob("gallery_*.png"))
  assert len(pictures) >= 4
  for png in pictures:
    assert f".. image:: {png}" in source, f"{png} is not on the schedules page"


# --- the guides' code --------------------------------------------------------------------

_FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
_PRINT = re.compile(r"^\s*print\(.*\)\s+#\s*(.+?)\s*$")


def _blocks(page: str) -> list[str]:
  return _FENCE.findall((DOCS / page).read_text())


@pytest.mark.parametrize("page", RUNNABLE_PAGES)
def test_guide_code_runs_and_prints_what_the_page_says(page):
  blocks = _blocks(page)
  assert blocks, f"{page} has no runnable python block"
  namespace: dict = {"__name__": f"docs_{page}"}
  checked = 0
  for i, code in enumerate(blocks):
    expected = [m.group(1) for m in map(_PRINT.match, code.splitlines()) if m]
    prints = [l for l in code.splitlines() if l.lstrip().startswith("print(")]
    assert len(expected) == len(prints), f"{page} block {i}: every print() needs its '# output' comment"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
      exec(compile(code, f"{page}[block {i}]", "exec"), namespace)  # noqa: S102
    got = out.getvalue().splitlines()
    assert got == expected, f"{page} block {i}:\n{code}"
    checked += len(expected)
  assert checked >= 1, page


# --- lrjax calls written in the pages ---------------------------------------------------------

_SPAN = re.compile(r"`([^`\n]+)`")


def _calls_in(text: str) -> list[ast.Call]:
  """Calls of lrjax constructors in the page's inline code and code blocks."""
  sources = _SPAN.findall(text) + re.findall(r"^```(?:python|\{code-block\} python)\n(.*?)^```", text, re.S | re.M)
  for shell in re.findall(r"^```bash\n(.*?)^```", text, re.S | re.M):
    sources += re.findall(r"'([^'\n]+)'", shell)  # lrjax plot 'cosine_decay(...)'
  calls = []
  for src in sources:
    # Porting rows leave a keyword's value blank (`step_size=`): give it one.
    src = re.sub(r"(\w+)=\s*(?=[,)])", r"\1=None", src)
    try:
      tree = ast.parse(src)
    except SyntaxError:
      continue
    for node in ast.walk(tree):
      if isinstance(node, ast.Call):
        calls.append(node)
  return calls


def _lrjax_name(func: ast.expr) -> str | None:
  if isinstance(func, ast.Name):
    return func.id if func.id in lrjax.__all__ else None
  if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "lrjax":
    return func.attr
  return None


# The pages, and the READMEs that the site includes.
_TEXTS = sorted(f"docs/{p.name}" for p in DOCS.glob("*.md")) + [
    "examples/fashion_mnist/README.md", "benchmarks/README.md"]


@pytest.mark.parametrize("page", _TEXTS)
def test_lrjax_calls_in_the_pages_use_real_keywords(page):
  text = (ROOT / page).read_text()
  wrong = []
  n = 0
  for call in _calls_in(text):
    name = _lrjax_name(call.func)
    if name is None:
      continue
    assert hasattr(lrjax, name), f"{page}: lrjax.{name} does not exist"
    params = inspect.signature(getattr(lrjax, name)).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
      continue
    for kw in call.keywords:
      n += 1
      if kw.arg is not None and kw.arg not in params:
        wrong.append(f"{name}({kw.arg}=...)")
  assert not wrong, f"{page}: keywords that lrjax does not take: {sorted(set(wrong))}"
  if page == "docs/porting.md":
    assert n >= 60, n  # the tables are read, not skipped


def _schedule_dicts(text: str) -> list[str]:
  """Every ``{"type": ...}`` JSON object written in the text."""
  found = []
  for start in (m.start() for m in re.finditer(r'\{"type":', text)):
    depth = 0
    for end in range(start, len(text)):
      depth += {"{": 1, "}": -1}.get(text[end], 0)
      if depth == 0:
        found.append(text[start:end + 1])
        break
  return found


@pytest.mark.parametrize("page", _TEXTS)
def test_schedule_dicts_in_the_pages_rebuild(page):
  import json

  for d in _schedule_dicts((ROOT / page).read_text()):
    try:
      lrjax.from_dict(json.loads(d))
    except (ValueError, TypeError) as e:
      pytest.fail(f"{page}: {d} does not rebuild: {e}")


def test_readme_links_resolve():
  """The README's relative links (into the site's pages, the pictures, the
  example) point at files that exist."""
  text = (ROOT / "README.md").read_text()
  targets = re.findall(r"\]\(([^()\s]+)\)", text)
  relative = [t.split("#")[0] for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:|#", t)]
  assert relative, "the README links to nothing in the repository"
  missing = [t for t in relative if t and not (ROOT / t).exists()]
  assert not missing, f"README.md links to missing files: {missing}"
