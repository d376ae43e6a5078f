"""The page both self-contained HTML reports share (``evaluation/html.py``, ``monitoring/html.py``).

One document shape: UTF-8, a Content-Security-Policy that forbids any fetch and any script (only inline
styles and ``data:`` images), so a report opens offline and reads the same later; and the base rules of the
reports' stylesheet, scoped under each report's root class so that in a notebook they style only the report.
"""

from __future__ import annotations

TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title></head>
<body>{{ body }}</body></html>
"""
_BASE_CSS = """
ROOT { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; max-width: 1200px;
  margin: 0 auto; padding: 8px 16px; }
ROOT h1 { font-size: 1.4em; margin: 0.4em 0; } ROOT h2 { font-size: 1.15em; margin: 1.2em 0 0.4em; }
ROOT table { border-collapse: collapse; font-size: 0.9em; margin: 4px 0; }
ROOT th, ROOT td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; }
ROOT td.num { text-align: right; font-variant-numeric: tabular-nums; }
ROOT .grid { display: flex; flex-wrap: wrap; gap: 8px; }
ROOT .plot { border: 1px solid #eee; border-radius: 4px; padding: 2px; }
ROOT .plot svg { display: block; max-width: 100%; height: auto; }
ROOT .meta { color: #666; font-size: 0.9em; }
"""


def base_css(root: str) -> str:
    """The shared rules (type, tables, the plot grid) under the report's root class, ``.mnb-eval``."""
    return _BASE_CSS.replace("ROOT", root)


def page(title: str, body: str) -> str:
    """One self-contained HTML document: ``title`` escaped, ``body`` (already safe HTML) as it is."""
    import jinja2
    from markupsafe import Markup

    return jinja2.Environment(autoescape=True).from_string(TEMPLATE).render(title=title, body=Markup(body))
