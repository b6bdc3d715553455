"""Sphinx extension of the LID book (listed under ``sphinx.local_extensions`` in _config.yml).

- Emits each ``<script>`` once per page. sphinx-thebe registers its inline
  configuration (``const THEBE_JS_URL = ...``) with ``filename=None``; Sphinx's HTML
  builder re-reads the registry with ``filename=''``, which does not compare equal, so
  the same inline script was emitted twice and every page logged
  ``SyntaxError: Identifier 'THEBE_JS_URL' has already been declared``.
- Adds ``static/lidbook.css``: wide notebook outputs (DataFrames, long text) scroll
  inside the content column; figures never exceed it.
"""
from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).parent / "static"


def _script_key(js):
    attrs = getattr(js, "attributes", {}) or {}
    name = js.filename if hasattr(js, "filename") else str(js)
    return (name or "",
            tuple(sorted((k, str(v)) for k, v in attrs.items() if k != "priority")))


def dedupe_scripts(app, pagename, templatename, context, doctree):
    """Drop repeated entries (same file or same inline body and attributes) of ``script_files``."""
    files = context.get("script_files")
    if not files:
        return
    seen, out = set(), []
    for js in files:
        key = _script_key(js)
        if key in seen:
            continue
        seen.add(key)
        out.append(js)
    context["script_files"] = out


def _add_static(app):
    app.config.html_static_path.append(str(STATIC))


def setup(app):
    app.connect("builder-inited", _add_static)
    app.add_css_file("lidbook.css")
    app.connect("html-page-context", dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
