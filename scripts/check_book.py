#!/usr/bin/env python
"""Open every page of the built book in headless Chromium and check what a reader sees.

Checks, per HTML page of ``_build/html`` (``make check-book``):

- ``js-error``: a JavaScript error or a failed resource load in the console. Requests
  to other hosts are blocked (the check runs as if offline) and their failures are
  listed as ``offline-request`` notes, not errors (``--strict-offline`` makes them errors);
- ``raw-math``: ``\\(`` ``\\)`` ``\\[`` ``\\]`` or ``$$`` left in the rendered text (outside
  code) after MathJax has finished: math that did not render;
- ``overflow``: an element of the main column wider than the column (or a page wider
  than the window) that is not inside a scrollable box;
- ``image``: an ``<img>`` that did not load;
- ``link``: an internal ``href``/``src`` whose file, or ``#anchor`` in it, does not exist;
- ``citation``: a citation role left as text outside code (a ``{cite}`` that did not
  render); a rendered citation links to its entry on the references page, checked as a ``link``;
- ``machine-path``: an absolute path of the build machine (home folders, ``/tmp``,
  ``/root``, the repository's own location, ``site-packages``) in the HTML text or the
  downloadable files.

A screenshot of each page (full height, capped) goes to ``--screenshots``
(default ``_build/screenshots``). Exits 1 when any check fails, 2 when the browser
cannot be started (install it with ``apt-get install chromium chromium-driver``).

Usage::

    python scripts/check_book.py                    # _build/html
    python scripts/check_book.py path/to/html --pages index.html book/claims.html
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import sys
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parents[1]
CHECKS = ("js-error", "raw-math", "overflow", "image", "link", "citation", "machine-path")
#: Folders of the site that hold third-party assets, not pages.
ASSET_DIRS = ("_static", "_sphinx_design_static", "_images")


# ------------------------------------------------------------------ static checks (no browser)
def machine_path_patterns(extra=()):
    """Regexes of absolute paths that must not appear in a published page.

    Generic home / temp / root folders, ``site-packages`` paths, and the concrete
    locations of this checkout, the user's home, the temp dir, the data and cache
    folders (``LIDUTILS_DATA_DIR``, ``LIDUTILS_CACHE_DIR``) and ``extra``.
    """
    pats = [r"(?<![\w.~-])/(?:home|Users)/[\w.-]+/", r"(?<![\w.~:/-])/root/[\w.-]",
            r"(?<![\w.~:/-])/tmp/[\w.-]", r"[\w.-]*/(?:site|dist)-packages/",
            r"\b[A-Z]:\\\\?(?:Users|home)\\"]
    concrete = {str(ROOT), str(Path.home()), tempfile.gettempdir(), *map(str, extra),
                *(os.environ[v] for v in ("LIDUTILS_DATA_DIR", "LIDUTILS_CACHE_DIR", "VIRTUAL_ENV")
                  if os.environ.get(v, "").startswith("/"))}
    for c in sorted(concrete):
        if len(c) > 4 and c not in ("/root", "/tmp"):
            pats.append(r"(?<![\w.-])" + re.escape(c.rstrip("/")) + r"(?:/|\b)")
    return [re.compile(p) for p in pats]


def find_machine_paths(text, patterns):
    """The distinct matches of ``patterns`` in ``text`` (with 30 characters of context)."""
    hits = []
    for pat in patterns:
        for m in pat.finditer(text):
            ctx = text[max(0, m.start() - 30): m.end() + 30].replace("\n", " ")
            if ctx not in hits:
                hits.append(ctx)
    return hits


_CODE = re.compile(r"<(pre|code|script|style)\b.*?</\1>", re.S | re.I)
_ROLE = re.compile(r"\{cite(?::[a-z]+)?\}`[^`<]*`?")


def find_raw_citations(html):
    """Citation roles left as text in a page (outside code): a ``{cite}`` that did not render."""
    text = _CODE.sub("", html)
    return [f"unrendered citation: {m.group(0)[:80]}" for m in _ROLE.finditer(text)]


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids, self.refs = set(), []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("id", "name"):
            if a.get(key) and (key == "id" or tag == "a"):
                self.ids.add(a[key])
        for key in ("href", "src"):
            if a.get(key) and not (tag == "link" and a.get("rel") in ("preconnect", "dns-prefetch")):
                self.refs.append((tag, a[key]))


def _parse(path, cache):
    if path not in cache:
        p = _Refs()
        p.feed(path.read_text(encoding="utf-8", errors="replace"))
        cache[path] = p
    return cache[path]


def check_links(site, page, cache):
    """Internal references of ``page`` whose target file or ``#anchor`` does not exist."""
    bad = []
    for tag, ref in _parse(page, cache).refs:
        u = urlsplit(ref)
        if u.scheme or ref.startswith("//") or ref.startswith("mailto:") or ref.startswith("data:"):
            continue
        target = page if not u.path else (page.parent / unquote(u.path)).resolve()
        if u.path.endswith("/") or (target.is_dir() and not u.path == ""):
            target = target / "index.html"
        if not target.exists():
            bad.append(f"<{tag}> {ref}: {target.relative_to(site.resolve()) if target.is_relative_to(site.resolve()) else target} does not exist")
            continue
        frag = unquote(u.fragment)
        if frag and target.suffix == ".html" and frag not in _parse(target, cache).ids:
            bad.append(f"<{tag}> {ref}: no element with id '{frag}' in {target.name}")
    return bad


_REDIRECT = re.compile(r'<meta\s+http-equiv="refresh"', re.I)


def pages_of(site):
    """Every HTML page of the site, assets and search/genindex scaffolding excluded."""
    out = []
    for p in sorted(site.rglob("*.html")):
        rel = p.relative_to(site)
        if rel.parts[0] in ASSET_DIRS or rel.parts[0].startswith("_"):
            continue
        out.append(p)
    return out


# ------------------------------------------------------------------------- browser checks
_PAGE_JS = r"""
const done = arguments[arguments.length - 1];
async function run() {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    try { await MathJax.startup.promise; } catch (e) {}
    if (MathJax.typesetPromise) { try { await MathJax.typesetPromise(); } catch (e) {} }
  }
  await new Promise(r => setTimeout(r, 150));
  const out = {rawMath: [], overflow: [], images: []};
  const main = document.querySelector('main .bd-article-container') ||
               document.querySelector('article') || document.querySelector('main') || document.body;
  // raw math: text outside code that still carries TeX delimiters
  const skip = 'PRE,CODE,SCRIPT,STYLE,TEXTAREA,MJX-CONTAINER,MJX-ASSISTIVE-MML,KBD,SAMP';
  const walker = document.createTreeWalker(main, NodeFilter.SHOW_TEXT);
  const rx = /\\\(|\\\)|\\\[|\\\]|\$\$/;
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    let el = n.parentElement, inCode = false;
    while (el && el !== main) {
      if (skip.split(',').includes(el.tagName) || el.classList.contains('highlight')) { inCode = true; break; }
      el = el.parentElement;
    }
    if (!inCode && rx.test(n.textContent)) {
      const t = n.textContent.trim();
      if (out.rawMath.length < 10) out.rawMath.push(t.slice(0, 120));
    }
  }
  // overflow: elements reaching past the column, not inside a scroll box
  const col = main.getBoundingClientRect();
  const scrolls = el => { const s = getComputedStyle(el).overflowX;
                          return s === 'auto' || s === 'scroll' || s === 'hidden' || s === 'clip'; };
  const inScroll = el => { for (let a = el.parentElement; a && a !== main; a = a.parentElement)
                             if (scrolls(a)) return true; return false; };
  const visible = el => { const s = getComputedStyle(el);
                          return s.visibility !== 'hidden' && s.display !== 'none' && el.getClientRects().length; };
  for (const el of main.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || !visible(el)) continue;
    if (r.right > col.right + 2 || r.left < col.left - 2) {
      if (inScroll(el)) continue;
      const p = el.parentElement;
      if (p && p !== main) { const pr = p.getBoundingClientRect();
        if ((pr.right > col.right + 2 || pr.left < col.left - 2) && !scrolls(p)) continue; }  // report the outermost
      if (scrolls(el) && el.scrollWidth > el.clientWidth && r.right <= col.right + 2) continue;
      if (out.overflow.length < 10)
        out.overflow.push(`${el.tagName.toLowerCase()}${el.className && typeof el.className === 'string' ?
          '.' + el.className.trim().split(/\s+/).join('.') : ''} ${Math.round(r.width)} px wide, ` +
          `column ${Math.round(col.width)} px: "${(el.innerText || '').trim().slice(0, 60)}"`);
    }
  }
  const de = document.documentElement;
  if (de.scrollWidth > de.clientWidth + 2)
    out.overflow.push(`page ${de.scrollWidth} px wide, window ${de.clientWidth} px`);
  for (const img of document.images) {
    if (!img.complete || img.naturalWidth === 0) out.images.push(img.getAttribute('src'));
  }
  out.height = Math.max(de.scrollHeight, document.body.scrollHeight);
  return out;
}
run().then(done, e => done({error: String(e)}));
"""


def find_browser():
    """(chromium binary, chromedriver binary) or raise RuntimeError saying how to install."""
    exe = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(b)), None)
    drv = shutil.which("chromedriver")
    if not exe or not drv:
        raise RuntimeError("headless Chromium is not installed (need `chromium` and `chromedriver` "
                           "on PATH): apt-get install -y chromium chromium-driver")
    return exe, drv


def start_browser(width=1280, height=900):
    """A headless Chromium (selenium) with console logging, requests to other hosts blocked."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    exe, drv = find_browser()
    opts = webdriver.ChromeOptions()
    opts.binary_location = exe
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              f"--window-size={width},{height}", "--hide-scrollbars", "--allow-file-access-from-files",
              "--disable-extensions", "--no-first-run"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv_ = webdriver.Chrome(service=Service(drv), options=opts)
    drv_.set_script_timeout(30)
    drv_.set_page_load_timeout(60)
    drv_.execute_cdp_cmd("Network.enable", {})
    drv_.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["http://*", "https://*", "ws://*", "wss://*"]})
    return drv_


def _is_offline_failure(msg):
    return bool(re.search(r"https?://", msg)) and not re.search(r"file://", msg.split(" - ")[0])


def check_page(driver, page, shot=None, max_height=12000, width=1280):
    """Browser checks of one page: dict of check -> list of problems (and ``notes``).

    ``shot``: path of the PNG screenshot to write (None: none).
    """
    driver.get(page.resolve().as_uri())
    # a loaded page has a body; on a busy machine get() can return a moment before that
    deadline = time.monotonic() + 30
    while not driver.execute_script("return document.readyState === 'complete' && !!document.body"):
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    res = driver.execute_async_script(_PAGE_JS)
    found = {c: [] for c in ("js-error", "raw-math", "overflow", "image")}
    found["notes"] = []
    if "error" in res:
        found["js-error"].append(f"page script failed: {res['error']}")
        res = {"rawMath": [], "overflow": [], "images": [], "height": 900}
    for entry in driver.get_log("browser"):
        if entry.get("level") != "SEVERE":
            continue
        msg = entry.get("message", "")
        (found["notes"] if _is_offline_failure(msg) else found["js-error"]).append(msg[:300])
    found["raw-math"] = [f"raw TeX in text: \"{t}\"" for t in res["rawMath"]]
    found["overflow"] = res["overflow"]
    found["image"] = [f"image not loaded: {s}" for s in res["images"]]
    if shot is not None:  # full page, height capped
        h = int(min(max(res.get("height") or 900, 600), max_height))
        # A viewport as tall as the page, then a plain capture. (captureBeyondViewport drew pages
        # whose code lines or tables scroll inside the column shifted sideways — chapter 07's
        # 1187 px code line in a 684 px column cut off the sidebar and the text's left edge —
        # although the page itself never scrolls sideways.)
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": h, "deviceScaleFactor": 1, "mobile": False})
        try:
            time.sleep(0.2)
            png = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
        finally:
            driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        Path(shot).parent.mkdir(parents=True, exist_ok=True)
        Path(shot).write_bytes(base64.b64decode(png["data"]))
    return found


def check_site(site, pages=None, screenshots=None, strict_offline=False, browser=True,
               extra_paths=(), width=1280):
    """Run every check over the built site.

    Parameters
    ----------
    site : path
        The HTML folder (``_build/html``).
    pages : list of str, optional
        Page paths relative to ``site`` (default: every page).
    screenshots : path, optional
        Folder for one PNG per page.
    strict_offline : bool
        Count failed requests to other hosts (blocked during the check) as errors.
    browser : bool
        False runs only the static checks (links, machine paths).
    extra_paths : iterable of str
        More absolute paths that must not appear.

    Returns
    -------
    dict
        ``{page: {check: [problems], "notes": [...]}}`` for every checked page.
    """
    site = Path(site)
    if not (site / "index.html").exists() and not pages:
        raise FileNotFoundError(f"{site} has no index.html: build the book first (make book).")
    plist = [site / p for p in pages] if pages else pages_of(site)
    pats = machine_path_patterns(extra_paths)
    cache, report = {}, {}
    for p in plist:
        rel = str(p.relative_to(site))
        report[rel] = {c: [] for c in CHECKS}
        report[rel]["notes"] = []
        report[rel]["link"] = check_links(site, p, cache)
        report[rel]["citation"] = find_raw_citations(p.read_text(encoding="utf-8", errors="replace"))
        report[rel]["machine-path"] = find_machine_paths(p.read_text(encoding="utf-8", errors="replace"), pats)
    for f in sorted(site.glob("_downloads/**/*")):
        if f.is_file() and f.suffix in (".json", ".csv", ".txt", ".ipynb", ".md", ".py"):
            hits = find_machine_paths(f.read_text(encoding="utf-8", errors="replace"), pats)
            if hits:
                report.setdefault(str(f.relative_to(site)), {c: [] for c in CHECKS} | {"notes": []})[
                    "machine-path"] += hits
    if browser:
        driver = start_browser(width=width)
        try:
            for p in plist:
                rel = str(p.relative_to(site))
                if _REDIRECT.search(p.read_text(encoding="utf-8", errors="replace")[:2000]):
                    report[rel]["notes"].append("redirect page: links checked, not rendered")
                    continue
                shot = None if screenshots is None else \
                    Path(screenshots) / (rel.replace(os.sep, "__").removesuffix(".html") + ".png")
                got = check_page(driver, p, shot, width=width)
                for k, v in got.items():
                    report[rel][k] += v
                if strict_offline:
                    report[rel]["js-error"] += report[rel]["notes"]
        finally:
            driver.quit()
    return report


def failures(report):
    """``[(page, check, problem)]`` of every failed check."""
    return [(pg, c, msg) for pg, r in report.items() for c in CHECKS for msg in r.get(c, [])]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("site", nargs="?", default=str(ROOT / "_build" / "html"))
    ap.add_argument("--pages", nargs="*", help="pages relative to the site (default: all)")
    ap.add_argument("--screenshots", default=str(ROOT / "_build" / "screenshots"))
    ap.add_argument("--strict-offline", action="store_true",
                    help="fail on requests to other hosts too (they are blocked during the check)")
    ap.add_argument("--json", help="also write the full report here")
    ap.add_argument("--width", type=int, default=1280, help="window width in px (default 1280)")
    args = ap.parse_args(argv)
    try:
        find_browser()
    except RuntimeError as exc:
        print(f"[check_book] FAILED: {exc}", file=sys.stderr)
        return 2
    Path(args.screenshots).mkdir(parents=True, exist_ok=True)
    try:
        report = check_site(args.site, pages=args.pages, screenshots=args.screenshots,
                            strict_offline=args.strict_offline, width=args.width)
    except FileNotFoundError as exc:
        print(f"[check_book] FAILED: {exc}", file=sys.stderr)
        return 2
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    bad = failures(report)
    notes = sorted({n for r in report.values() for n in r.get("notes", [])})
    for pg, r in report.items():
        flag = [c for c in CHECKS if r.get(c)]
        print(f"[check_book] {'FAIL' if flag else 'ok  '} {pg}" + (f"  ({', '.join(flag)})" if flag else ""))
    for pg, c, msg in bad:
        print(f"  {pg}: {c}: {msg}")
    if notes:  # redirect pages; failed requests to other hosts (blocked: the check runs offline)
        print(f"[check_book] {len(notes)} note(s):")
        for n in notes[:10]:
            print(f"  note: {n}")
    counts = {c: sum(1 for _, cc, _ in bad if cc == c) for c in CHECKS}
    print(f"[check_book] {len(report)} pages; problems: "
          + ", ".join(f"{c} {n}" for c, n in counts.items()) + f"; screenshots in {args.screenshots}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
