"""Sphinx configuration for the lrjax documentation site.

Build (warnings are errors):

  python -m sphinx -W -b html docs docs/_build/html

Everything the build reads is in this repository: the pages in `docs/`, the
docstrings of `lrjax`, `examples/fashion_mnist/README.md`,
`benchmarks/README.md` and two sections of `README.md` (MyST includes; the
results and benchmark tables are written once, there), and the pictures that
`docs/make_gallery.py` draws. Nothing is fetched from the network at build time
(no intersphinx), and nothing is fetched when a page opens: the theme's
styles, fonts and icons and MathJax (from ``sphinx-mathjax-offline``) are
copied into the built site, so the pages, formulas included, read offline
(``tests/test_docs_browser.py`` opens them in Chromium with no network).

Three directives written here keep the pages in step with the code:

* ``lrjax-api`` (api.rst): one entry per name in ``lrjax.__all__``, grouped by
  the module that defines it, so a new public name gets its entry by itself;
* ``lrjax-formulas MODULE`` (schedules.rst): each public constructor of a
  family with its one-line summary, the ``.. math::`` block(s) of its
  docstring and the paragraph after each, linked to its API entry;
* ``lrjax-cli ARGS`` (cli.md): the output of ``lrjax ARGS`` (``--help`` texts,
  ``lrjax list``) as a literal block, so the page shows the real command line.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import os
import re
import sys
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList
from sphinx.errors import ExtensionError
from sphinx.util.nodes import nested_parse_with_titles

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

import lrjax  # noqa: E402  (after the path is set)

# --- project -------------------------------------------------------------------

project = "lrjax"
author = "the lrjax authors"
copyright = "the lrjax authors, Apache-2.0"  # noqa: A001  (Sphinx's name)
release = lrjax.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",  # served from the site itself: see setup() below
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
# Only the pages are sources: not the build, not the gallery script, not the
# pictures (they are read as images from the pages).
include_patterns = ["*.md", "*.rst"]
exclude_patterns = ["_build", "**/.*"]
templates_path: list[str] = []

# Single backticks in docstrings (`jax.Array`, `init_value`) are Python objects:
# a link where the target is documented, code otherwise.
default_role = "py:obj"
nitpicky = False

# --- autodoc and napoleon (Google-style docstrings) ------------------------------

autodoc_typehints = "signature"
autodoc_member_order = "bysource"
autodoc_preserve_defaults = True
autosummary_generate = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_include_init_with_doc = False
napoleon_use_rtype = False
napoleon_use_param = True
napoleon_use_ivar = True

# --- MyST (Markdown pages) -----------------------------------------------------------

# No dollarmath: a "$" in an included README stays a dollar sign; pages write
# {math}`...` and ```{math} blocks.
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

# MathJax 3 (the version sphinx-mathjax-offline ships) typesets only what
# Sphinx marked as math (``:math:``/``{math}`` and ``.. math::``), with Sphinx's
# delimiters: a "$$" or "\(" in a page's prose stays text. Its textmacros
# extension reads ``\_`` inside ``\text{...}`` (``\text{init\_value}``), which
# MathJax 3 would otherwise show as a backslash and an underscore.
mathjax3_config = {
    "loader": {"load": ["[tex]/textmacros"]},
    "tex": {
        "inlineMath": [["\\(", "\\)"]],
        "displayMath": [["\\[", "\\]"]],
        "packages": {"[+]": ["textmacros"]},
    },
    "options": {
        "ignoreHtmlClass": "tex2jax_ignore|mathjax_ignore|bd-container",
        "processHtmlClass": "tex2jax_process|mathjax_process|math",
    },
}

# --- HTML ---------------------------------------------------------------------------

# sphinx-book-theme, as optax, Flax and JAX use: the site's navigation on the
# left, the page's contents on the right, the repository link and the
# light/dark switch in the header. Everything it loads is in the built site.
REPOSITORY_URL = "https://github.com/lrjax/lrjax"
html_theme = "sphinx_book_theme"
html_title = f"lrjax {release}"
html_static_path = ["_static"]
html_css_files = ["lrjax.css"]
html_theme_options = {
    "repository_url": REPOSITORY_URL,
    "repository_branch": "main",
    "path_to_docs": "docs",
    "use_repository_button": True,
    "use_issues_button": True,
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "show_navbar_depth": 1,
    # pydata-sphinx-theme >= 0.17 puts a search field in a top bar unless this
    # is set; the book layout has its search in the sidebar already.
    "navbar_persistent": [],
}
html_show_sourcelink = False

# --- the API reference ----------------------------------------------------------------

# Section titles for the modules that define public names, in page order. A name
# from a module not listed here still gets its entry, in a section titled by its
# module's docstring.
_FAMILIES = {
    "lrjax._base": "Schedules as values",
    "lrjax._registry": "Schedules as values",
    "lrjax._decay": "Decay schedules",
    "lrjax._cosine": "Cosine schedules",
    "lrjax._cyclic": "Cyclic schedules and momentum",
    "lrjax._combine": "Combinators",
    "lrjax._cooldown": "Combinators",
    "lrjax._inject": "Schedules inside optax optimizers",
    "lrjax._groups": "Schedules inside optax optimizers",
    "lrjax._hyperparams": "Schedules inside optax optimizers",
    "lrjax._plateau": "Reduce on plateau",
    "lrjax._plateau_state": "Reduce on plateau",
    "lrjax._range_test": "Learning-rate range test",
    "lrjax._plot": "Plotting",
}


def public_names() -> list[str]:
  """`lrjax.__all__`, checked: every name must exist."""
  names = list(lrjax.__all__)
  missing = [n for n in names if not hasattr(lrjax, n)]
  if missing:
    raise ExtensionError(f"lrjax.__all__ names missing from lrjax: {missing}")
  return names


def _module_of(name: str) -> str:
  obj = getattr(lrjax, name)
  return getattr(obj, "__module__", None) or "lrjax"


def _section_title(module: str) -> str:
  if module in _FAMILIES:
    return _FAMILIES[module]
  doc = inspect.getdoc(sys.modules.get(module)) or module
  return doc.strip().splitlines()[0].rstrip(".:")


def api_groups() -> list[tuple[str, list[str]]]:
  """[(section title, [names in __all__ order])], sections in page order."""
  groups: dict[str, list[str]] = {}
  for name in public_names():
    groups.setdefault(_section_title(_module_of(name)), []).append(name)
  order = list(dict.fromkeys(_FAMILIES.values()))
  return sorted(groups.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order))


def _autodoc_lines(name: str) -> list[str]:
  obj = getattr(lrjax, name)
  if inspect.isclass(obj):
    lines = [f".. autoclass:: lrjax.{name}", "   :members:"]
    if issubclass(obj, tuple):  # a NamedTuple: list its fields too
      lines.append("   :undoc-members:")
    return lines
  if callable(obj):
    return [f".. autofunction:: lrjax.{name}"]
  return [f".. autodata:: lrjax.{name}", "   :no-value:"]


def _field_comments(cls: type) -> dict[str, str]:
  """The ``# ...`` comments above (or after) each annotated field of a class."""
  try:
    source = inspect.getsource(cls)
  except (OSError, TypeError):
    return {}
  out, comment = {}, []
  for line in source.splitlines():
    s = line.strip()
    if s.startswith("#"):
      comment.append(s.lstrip("#").strip())
      continue
    m = re.match(r"^(\w+)\s*:[^#]*(?:#\s*(.*))?$", s)
    if m and (comment or m.group(2)):
      out[m.group(1)] = " ".join(comment + [m.group(2) or ""]).strip()
    comment = []
  return out


def _namedtuple_field_doc(app, what, name, obj, options, lines) -> None:
  """A NamedTuple field documented by the comment above it in the source,
  instead of Python's "Alias for field number i"."""
  if not (lines and re.fullmatch(r"Alias for field number \d+", lines[0].strip())):
    return
  owner, _, field = name.rpartition(".")
  cls = getattr(lrjax, owner.rpartition(".")[2], None)
  comment = _field_comments(cls).get(field) if inspect.isclass(cls) else None
  if comment:
    lines[:] = [_rst_text(comment)]


def _rst_text(text: str) -> str:
  """A source comment as reST: `x` and ``x`` as code, markup characters escaped."""
  parts = re.split(r"(``[^`]+``|`[^`]+`)", text)
  out = []
  for p in parts:
    if p.startswith("`"):
      out.append("``" + p.strip("`") + "``")
    else:
      out.append(re.sub(r"([*|\\]|_(?=\W|$))", r"\\\1", p))
  return "".join(out)


def _skip_uncommented_field(app, what, name, obj, skip, options):
  """Leaves out a NamedTuple field with neither a comment nor a docstring of
  its own (its class docstring's ``Attributes:`` describe it)."""
  if what != "class" or not re.fullmatch(r"Alias for field number \d+", (getattr(obj, "__doc__", "") or "").strip()):
    return None
  for cls_name in lrjax.__all__:
    cls = getattr(lrjax, cls_name)
    if inspect.isclass(cls) and issubclass(cls, tuple) and name in getattr(cls, "_fields", ()):
      if getattr(cls, name, None) is obj:
        return None if name in _field_comments(cls) else True
  return None


class ApiDirective(Directive):
  """``.. lrjax-api::``: every name of ``lrjax.__all__``, grouped by family."""

  has_content = False

  def run(self) -> list[nodes.Node]:
    lines = [".. currentmodule:: lrjax", ""]
    for title, names in api_groups():
      lines += [title, "-" * len(title), "", ".. autosummary::", ""]
      lines += [f"   {n}" for n in names]
      lines.append("")
      for n in names:
        lines += _autodoc_lines(n) + [""]
    return _parse(self, lines, "lrjax-api")


# --- formulas for the schedules page -----------------------------------------------------


def _math_blocks(doc: str) -> list[list[str]]:
  """The ``.. math::`` blocks of a docstring, each with the paragraph after it."""
  lines = doc.splitlines()
  end = len(lines)
  for i, line in enumerate(lines):  # formulas come before Args:/Returns:/...
    if re.match(r"^(Args|Arguments|Returns|Raises|Example|Examples|References):\s*$", line):
      end = i
      break
  blocks, i = [], 0
  while i < end:
    if not lines[i].startswith(".. math::"):
      i += 1
      continue
    block = [lines[i]]
    i += 1
    while i < end and (not lines[i].strip() or lines[i].startswith(" ")):
      block.append(lines[i])
      i += 1
    para = []
    if i < end and not lines[i].startswith(".."):  # the paragraph naming the symbols
      while i < end and lines[i].strip():
        para.append(lines[i])
        i += 1
    blocks.append(block + [""] + para)
  return blocks


class FormulasDirective(Directive):
  """``.. lrjax-formulas:: lrjax._cosine``: each public name of that module
  with its summary and its formulas, linked to the API entry."""

  required_arguments = 1
  has_content = False

  def run(self) -> list[nodes.Node]:
    module = self.arguments[0]
    names = [n for n in public_names() if _module_of(n) == module and callable(getattr(lrjax, n))]
    if not names:
      raise self.error(f"lrjax-formulas: no public name of lrjax.__all__ is defined in {module}")
    lines: list[str] = []
    for n in names:
      doc = inspect.getdoc(getattr(lrjax, n))
      if not doc:
        raise self.error(f"lrjax-formulas: lrjax.{n} has no docstring")
      summary = doc.split("\n\n", 1)[0].replace("\n", " ")
      lines += [f".. rubric:: :func:`lrjax.{n}`", "", summary, ""]
      for block in _math_blocks(doc):
        lines += block + [""]
    return _parse(self, lines, f"lrjax-formulas {module}")


# --- the command line -------------------------------------------------------------------


class CliDirective(Directive):
  """``.. lrjax-cli:: plot --help``: what ``lrjax plot --help`` prints."""

  required_arguments = 0
  optional_arguments = 20
  has_content = False

  def run(self) -> list[nodes.Node]:
    from lrjax.__main__ import main

    argv = list(self.arguments)
    out, err = io.StringIO(), io.StringIO()
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "88"  # argparse wraps to the terminal width
    try:
      with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
          code = main(argv)
        except SystemExit as e:  # --help exits 0
          code = e.code
    finally:
      if old is None:
        del os.environ["COLUMNS"]
      else:
        os.environ["COLUMNS"] = old
    if code not in (0, None):
      raise self.error(f"lrjax-cli: `lrjax {' '.join(argv)}` exited {code}: {err.getvalue().strip()}")
    text = f"$ lrjax {' '.join(argv)}\n" + out.getvalue().rstrip()
    block = nodes.literal_block(text, text)
    block["language"] = "text"
    return [block]


def _parse(directive: Directive, lines: list[str], source: str) -> list[nodes.Node]:
  node = nodes.section() if any(set(l) == {"-"} for l in lines if l) else nodes.container()
  content = StringList(lines, source=f"<{source}>")
  nested_parse_with_titles(directive.state, content, node)
  return node.children


# --- included Markdown files from elsewhere in the repository --------------------------------

# Files included into pages, and the page each becomes.
_INCLUDED_PAGES = {
    "examples/fashion_mnist/README.md": "fashion_mnist",
    "benchmarks/README.md": "benchmarks",
    "README.md": "index",
}
# Fragments of links to those files that have a counterpart in the site.
_FRAGMENTS = {
    "README.md#results-the-reference-experiment-on-real-fashion-mnist": "fashion_mnist.md#fashion-mnist-results",
    "README.md#benchmarks": "benchmarks.md",
}
# Included files whose first-level title the including page replaces with its own.
_DROP_TITLE = {"examples/fashion_mnist/README.md", "benchmarks/README.md"}
# The top-level README is the front page: a page that includes it takes one of
# its second-level sections (the one whose title starts so), with or without
# the title, so the README's tables are written once.
_README_SECTIONS = {
    "fashion_mnist": ("## Results", True),
    "benchmarks": ("## Benchmarks", False),
}


def _readme_section(text: str, page: str) -> str:
  if page not in _README_SECTIONS:
    raise ExtensionError(f"README.md is included into {page!r}, which takes no section of it")
  prefix, keep_title = _README_SECTIONS[page]
  lines = text.split("\n")
  headings, fenced = [], False  # second-level titles outside code blocks
  for i, line in enumerate(lines):
    if line.lstrip().startswith("```"):
      fenced = not fenced
    elif not fenced and line.startswith("## "):
      headings.append(i)
  starts = [i for i in headings if lines[i].startswith(prefix)]
  if not starts:
    raise ExtensionError(f"{page}: README.md has no section titled {prefix!r}...")
  start = starts[0]
  end = next((i for i in headings if i > start), len(lines))
  first = start if keep_title else start + 1
  # Blank lines in place of the rest keep the line numbers of warnings right.
  return "\n" * first + "\n".join(lines[first:end])

_LINK = re.compile(r"(!?)\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^()\s]+)\)")


def _rewrite_link(match: re.Match, src_dir: Path, page_dir: Path) -> str:
  bang, text, target = match.groups()
  if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
    return match.group(0)  # a URL or an anchor on the same page
  path, _, fragment = target.partition("#")
  resolved = (src_dir / path).resolve()
  try:
    rel = resolved.relative_to(ROOT).as_posix()
  except ValueError:
    return match.group(0)  # outside the repository: left for Sphinx to report
  if bang or not resolved.exists():
    # An image, or a file that does not exist: relative to the page, so that a
    # missing file is reported by Sphinx as a broken reference.
    return f"{bang}[{text}]({os.path.relpath(resolved, page_dir)}{'#' + fragment if fragment else ''})"
  key = f"{rel}#{fragment}" if fragment else rel
  if key in _FRAGMENTS:
    return f"[{text}]({os.path.relpath(DOCS / _FRAGMENTS[key], page_dir)})"
  if rel in _INCLUDED_PAGES:
    return f"[{text}]({os.path.relpath(DOCS / (_INCLUDED_PAGES[rel] + '.md'), page_dir)})"
  if resolved.is_relative_to(DOCS) and resolved.suffix in (".md", ".rst"):
    return f"[{text}]({os.path.relpath(resolved, page_dir)}{'#' + fragment if fragment else ''})"
  # A source file of the repository (a script, a module): named, not linked,
  # since the site does not carry the sources.
  return text if text.startswith("`") else f"{text} (`{rel}`)"


def _on_include_read(app, relative_path, parent_docname, content) -> None:
  """Rewrites an included file's repository-relative links for its page."""
  src = (Path(app.srcdir) / relative_path).resolve()
  page_dir = (Path(app.srcdir) / parent_docname).parent
  try:
    rel = src.relative_to(ROOT).as_posix()
  except ValueError:
    return
  text = content[0]
  if rel == "README.md":
    text = _readme_section(text, parent_docname)
  if rel in _DROP_TITLE:
    first, _, rest = text.partition("\n")
    if first.startswith("# "):
      text = "\n" + rest  # (a blank line keeps the line numbers of warnings right)
  out, fenced = [], False
  for line in text.split("\n"):
    if line.lstrip().startswith("```"):
      fenced = not fenced
    if not fenced:
      line = _LINK.sub(lambda m: _rewrite_link(m, src.parent, page_dir), line)
    out.append(line)
  content[0] = "\n".join(out)


def setup(app):
  # MathJax from the site itself, not a CDN: sphinx-mathjax-offline's setup
  # points mathjax_path at _static/mathjax/tex-chtml.js and copies its MathJax
  # 3 there after each build. Called here rather than listed in `extensions`,
  # where Sphinx would warn (an error under -W) at `-j N` that the package
  # does not declare itself safe for parallel reading.
  importlib.import_module("sphinx-mathjax-offline").setup(app)
  app.add_directive("lrjax-api", ApiDirective)
  app.add_directive("lrjax-formulas", FormulasDirective)
  app.add_directive("lrjax-cli", CliDirective)
  app.connect("include-read", _on_include_read)
  app.connect("autodoc-process-docstring", _namedtuple_field_doc)
  app.connect("autodoc-skip-member", _skip_uncommented_field)
  return {"parallel_read_safe": True, "parallel_write_safe": True}
