"""The built site as a reader sees it: every page opened in headless Chromium
with no network (tests/browser.py). Every formula is typeset, none is left as
raw LaTeX, and no page asks for anything outside the site: its scripts,
styles, fonts and MathJax are all in it. The pages keep to the window (wide
tables scroll inside their own box, pictures fit the column), the theme's
parts (navigation, contents, repository link, dark mode) are there, and the
search finds an API entry offline."""

from __future__ import annotations

import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

import browser

DOCS = Path(__file__).resolve().parent.parent / "docs"
REPOSITORY_URL = "https://github.com/lrjax/lrjax"
WIDTH = 1280

# Run in each page once it has loaded: waits for MathJax's first typesetting
# and for the fonts, then reads what the reader would see.
_READ_PAGE = r"""
(async () => {
  const mj = window.MathJax;
  if (mj && mj.startup && mj.startup.promise) await mj.startup.promise;
  await document.fonts.ready;
  const skip = 'pre, code, script, style, textarea, mjx-container';
  const raw = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (n.parentElement.closest(skip)) continue;
    if (/\\[()\[\]]/.test(n.textContent)) raw.push(n.textContent.trim().slice(0, 100));
  }
  // TeX left as text inside a typeset formula (\text{init\_value} shown with
  // its backslash): read from MathJax's own MathML of each formula.
  const tex_as_text = [];
  if (mj && mj.startup && mj.startup.document && mj.startup.toMML) {
    for (const item of mj.startup.document.math) {
      for (const m of mj.startup.toMML(item.root).matchAll(/<mtext[^>]*>([^<]*)<\/mtext>/g)) {
        if (m[1].includes('\\')) tex_as_text.push(m[1]);
      }
    }
  }
  const article = document.querySelector('.bd-article');
  const column = article ? article.getBoundingClientRect().width : 0;
  const images = article ? [...article.querySelectorAll('img')] : [];
  const tables = article ? [...article.querySelectorAll('table')] : [];
  const links = [...document.querySelectorAll('a[href]')].map(a => a.href);
  return JSON.stringify({
    mathjax: !!(mj && mj.version),
    inline: document.querySelectorAll('mjx-container:not([display="true"])').length,
    display: document.querySelectorAll('mjx-container[display="true"]').length,
    errors: [...document.querySelectorAll('mjx-merror')].map(e => e.textContent),
    tex_as_text,
    raw,
    font_errors: [...document.fonts].filter(f => f.status === 'error').map(f => f.family),
    page_width: document.documentElement.scrollWidth,
    window_width: document.documentElement.clientWidth,
    column,
    images: images.map(i => ({src: i.src, shown: i.getBoundingClientRect().width,
                              natural: i.naturalWidth, complete: i.complete})),
    tables: tables.map(t => {
      const box = t.closest('.pst-scrollable-table-container') || t.parentElement;
      return {wide: t.scrollWidth, box: box.clientWidth, overflow: getComputedStyle(box).overflowX,
              right: box.getBoundingClientRect().right};
    }),
    article_right: article ? article.getBoundingClientRect().right : 0,
    navigation: document.querySelectorAll('.bd-sidebar-primary nav a.reference').length,
    contents: document.querySelectorAll('.bd-sidebar-secondary nav a').length,
    repository: links.filter(h => h.startsWith(%(repo)s)).length,
    theme_switch: !!document.querySelector('.theme-switch-button'),
    theme: document.documentElement.dataset.theme,
    background: getComputedStyle(document.body).backgroundColor,
    math_color: (document.querySelector('mjx-container') ?
                 getComputedStyle(document.querySelector('mjx-container')).color : null),
  });
})()
""" % {"repo": json.dumps(REPOSITORY_URL)}


# The search page, given a query: the links it lists (Sphinx's search runs in
# the page, from searchindex.js; it may take a moment).
SEARCHED = "cosine_restarts"
_SEARCH_RESULTS = r"""
(async () => {
  for (let i = 0; i < 100; i++) {
    const found = [...document.querySelectorAll('#search-results li a')].map(a => a.href);
    if (found.length) return JSON.stringify(found);
    await new Promise(r => setTimeout(r, 100));
  }
  return "[]";
})()
"""


class _MathInSource(HTMLParser):
  """Counts the formulas Sphinx wrote into a page: ``\\(...\\)`` in its
  ``<span class="math">`` and ``\\[...\\]`` in its ``<div class="math">``."""

  def __init__(self):
    super().__init__()
    self.inline = self.display = 0
    self._in = None

  def handle_starttag(self, tag, attrs):
    classes = (dict(attrs).get("class") or "").split()
    if tag in ("span", "div") and "math" in classes:
      self._in = tag

  def handle_endtag(self, tag):
    if tag == self._in:
      self._in = None

  def handle_data(self, data):
    if self._in == "span":
      self.inline += data.count("\\(")
    elif self._in == "div":
      self.display += data.count("\\[")


def _formulas_in(page: Path) -> tuple[int, int]:
  parser = _MathInSource()
  parser.feed(page.read_text(encoding="utf-8"))
  return parser.inline, parser.display


def _luminance(css_color: str) -> float:
  r, g, b = (int(x) for x in re.findall(r"\d+", css_color)[:3])
  return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


@pytest.fixture(scope="module")
def chromium() -> str:
  path = browser.find_chromium()
  if path is None:
    # Not a skip: CI installs it (.ci/setup), and a skipped browser check
    # would let raw formulas and CDN loads back in unnoticed.
    pytest.fail("chromium is not installed: run `bash .ci/setup` (Debian's `chromium` package)")
  return path


@pytest.fixture(scope="module")
def browsed(site, chromium):
  """{page file name: (what the page showed, every URL it requested, failed
  requests)} for every HTML page of the site; the dark-mode reading of the
  schedules page; the links a search finds and the URLs it requested."""
  b = browser.Browser(chromium, width=WIDTH)
  try:
    # As root (CI), the browser must be cut off the network, not only fenced.
    assert b.isolated or os.geteuid() != 0, "chromium could not be put in a network namespace"
    pages = {}
    for page in sorted(site.glob("*.html")):
      session = b.open(page.as_uri())
      shown = json.loads(b.evaluate(_READ_PAGE, session))
      pages[page.name] = (shown, b.requests(session), b.failed(session))
    session = b.open((site / "schedules.html").as_uri(), dark=True)
    dark = json.loads(b.evaluate(_READ_PAGE, session))
    session = b.open((site / "search.html").as_uri() + "?q=" + SEARCHED)
    search = (json.loads(b.evaluate(_SEARCH_RESULTS, session)), b.requests(session))
  finally:
    b.close()
  return pages, dark, search


def test_every_page_was_opened(site, browsed):
  pages, _, _ = browsed
  sources = {p.stem for p in DOCS.glob("*.md")} | {p.stem for p in DOCS.glob("*.rst")}
  assert {f"{s}.html" for s in sources} <= set(pages)
  assert {"genindex.html", "search.html"} <= set(pages)


def test_every_formula_is_typeset_and_none_left_raw(site, browsed):
  pages, _, _ = browsed
  total = 0
  problems = []
  for name, (shown, _, _) in pages.items():
    inline, display = _formulas_in(site / name)
    total += inline + display
    if inline + display and not shown["mathjax"]:
      problems.append(f"{name}: {inline + display} formulas but MathJax did not run")
    if (shown["inline"], shown["display"]) != (inline, display):
      problems.append(f"{name}: typeset {shown['inline']} inline + {shown['display']} display, "
                      f"the page has {inline} + {display}")
    if shown["raw"]:
      problems.append(f"{name}: raw LaTeX left: {shown['raw'][:3]}")
    if shown["errors"]:
      problems.append(f"{name}: TeX errors: {shown['errors'][:3]}")
    if shown["tex_as_text"]:
      problems.append(f"{name}: TeX shown as text in formulas: {sorted(set(shown['tex_as_text']))[:3]}")
  assert not problems, "\n".join(problems)
  # The schedules page carries every constructor's formula: the check above
  # counted real formulas, not an empty site.
  schedules = _formulas_in(site / "schedules.html")
  assert schedules[0] >= 50 and schedules[1] >= 20, schedules
  assert total > sum(schedules)


def test_no_page_asks_for_anything_outside_the_site(site, browsed):
  pages, _, _ = browsed
  inside = site.as_uri() + "/"
  outside, failed, fonts = [], [], []
  for name, (shown, requests, failures) in pages.items():
    assert requests and requests[0].startswith(inside), (name, requests[:1])
    outside += [f"{name}: {u}" for u in requests
                if not (u.startswith(inside) or u.startswith(("data:", "blob:", "about:")))]
    failed += [f"{name}: {f}" for f in failures]
    fonts += [f"{name}: {f}" for f in shown["font_errors"]]
  assert not outside, "requests outside the site:\n" + "\n".join(outside)
  assert not failed, "requests that failed:\n" + "\n".join(failed)
  assert not fonts, "fonts that did not load:\n" + "\n".join(fonts)
  # MathJax itself and its fonts came from the site.
  sched = pages["schedules.html"][1]
  assert any(u.startswith(inside + "_static/mathjax/") and u.split("?")[0].endswith(".js") for u in sched), sched
  assert any(u.split("?")[0].endswith(".woff") and "/mathjax/" in u for u in sched), sched


# What makes a browser fetch a URL as it reads a file (a link <a href> does not).
_HTML_LOAD = re.compile(
    r"<(?:script|img|iframe|source|video|audio|embed|track)\b[^>]*?\bsrc\s*=\s*[\"']?(?:https?:)?//"
    r"|<link\b(?=[^>]*\brel\s*=\s*[\"']?(?:stylesheet|preload|modulepreload|prefetch|preconnect|dns-prefetch|icon))"
    r"[^>]*?\bhref\s*=\s*[\"']?(?:https?:)?//", re.I)
_CSS_LOAD = re.compile(r"url\(\s*[\"']?(?:https?:)?//|@import\s+[\"'](?:https?:)?//", re.I)


def test_no_built_file_points_a_load_outside_the_site(site):
  """The files themselves, beside what the browser asked for: a font or
  icon that a page did not happen to use is caught here too."""
  # The patterns catch what Sphinx writes by default (MathJax from a CDN).
  assert _HTML_LOAD.search('<script defer="defer" src="https://cdn.jsdelivr.net/npm/mathjax@4/tex-mml-chtml.js">')
  assert _HTML_LOAD.search('<link rel="stylesheet" href="//fonts.example/css">')
  assert not _HTML_LOAD.search('<a class="reference external" href="https://github.com/lrjax/lrjax">')
  assert _CSS_LOAD.search("@font-face{src:url(https://fonts.example/a.woff2)}")
  htmls = sorted(site.rglob("*.html"))
  csss = sorted(site.rglob("*.css"))
  assert len(htmls) >= 10 and len(csss) >= 5, (len(htmls), len(csss))
  found = [f"{p.relative_to(site)}: {m.group(0)[:120]}" for p in htmls
           for m in _HTML_LOAD.finditer(p.read_text(encoding="utf-8", errors="replace"))]
  found += [f"{p.relative_to(site)}: {m.group(0)}" for p in csss
            for m in _CSS_LOAD.finditer(p.read_text(encoding="utf-8", errors="replace"))]
  assert not found, "loads from outside the site:\n" + "\n".join(found)


def test_pages_fit_the_window_wide_tables_scroll_pictures_fit(browsed):
  pages, _, _ = browsed
  problems = []
  wide_tables = pictures_shrunk = 0
  for name, (shown, _, _) in pages.items():
    if shown["page_width"] > shown["window_width"]:
      problems.append(f"{name}: the page is {shown['page_width']} px wide in a {shown['window_width']} px window")
    for table in shown["tables"]:
      if table["wide"] > table["box"]:
        wide_tables += 1
        if table["overflow"] not in ("auto", "scroll"):
          problems.append(f"{name}: a table {table['wide']} px wide in {table['box']} px does not scroll")
      if table["right"] > shown["article_right"] + 1:
        problems.append(f"{name}: a table's box runs past the article")
    for img in shown["images"]:
      if not img["complete"] or img["natural"] == 0:
        problems.append(f"{name}: {img['src']} did not load")
      if img["shown"] > shown["column"] + 1:
        problems.append(f"{name}: {img['src']} is {img['shown']} px wide in a {shown['column']} px column")
      pictures_shrunk += img["natural"] > img["shown"]
  assert not problems, "\n".join(problems)
  # The cases were there: the porting tables are wider than the column, and
  # the gallery's pictures were drawn larger than it.
  assert any(t["wide"] > t["box"] for t in pages["porting.html"][0]["tables"])
  assert pictures_shrunk >= 4, pictures_shrunk


def test_theme_navigation_contents_repository_and_dark_mode(browsed):
  pages, dark, _ = browsed
  light = pages["schedules.html"][0]
  n_pages = len(list(DOCS.glob("*.md"))) + len(list(DOCS.glob("*.rst")))
  assert light["navigation"] >= n_pages - 1, light["navigation"]  # every page but the home page link
  assert light["contents"] >= 4, light["contents"]  # the page's sections
  assert light["repository"] >= 1 and light["theme_switch"]
  # Dark mode follows the reader's system setting: a dark page, and
  # formulas drawn in a light colour on it.
  assert light["theme"] == "light" and dark["theme"] == "dark", (light["theme"], dark["theme"])
  assert _luminance(light["background"]) > 0.8 and _luminance(dark["background"]) < 0.2
  assert dark["math_color"] is not None, "no formula typeset on the dark page"
  assert _luminance(dark["math_color"]) > 0.6, dark["math_color"]


def test_search_works_offline(site, browsed):
  _, _, (found, requests) = browsed
  assert any(h.endswith(f"api.html#lrjax.{SEARCHED}") for h in found), found
  inside = site.as_uri() + "/"
  assert all(u.startswith((inside, "data:", "blob:", "about:")) for u in requests), requests
