"""Small functions that write self-contained HTML pages (inline CSS, figures as PNG files beside
the page, every file written atomically)."""

from __future__ import annotations

import html
import math
from pathlib import Path

from ..utils.files import atomic_write

__all__ = ["page", "table", "figure", "write_text", "fmt"]

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #eee; }
table { border-collapse: collapse; margin: .6em 0; font-size: .92em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: right; }
th { background: #f5f5f5; }
td.l, th.l { text-align: left; }
h3 { font-size: 1.05em; margin: 1.2em 0 .2em; }
.warn { background: #fdecea; border-left: 4px solid #d93025; padding: .5em 1em; margin: .4em 0; }
.caution { background: #fff4e5; border-left: 4px solid #f0a020; padding: .5em 1em; margin: .4em 0; }
.info { background: #eef3fb; border-left: 4px solid #4a7fd4; padding: .5em 1em; margin: .4em 0; }
.headline { font-size: 1.15em; font-weight: 600; margin: .4em 0; }
.sub { color: #444; margin-top: -.6em; }
.ok { background: #eef8ee; border-left: 4px solid #3a3; padding: .5em 1em; margin: .4em 0; }
.note { color: #555; font-size: .92em; margin: .3em 0; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: .9em; }
pre { background: #f8f8f8; padding: .6em; overflow-x: auto; font-size: .85em; }
.small { font-size: .85em; color: #666; }
"""


def esc(s) -> str:
    return html.escape(str(s))


def fmt(v, digits: int = 4) -> str:
    """A number for a table: NaN as "–", floats to ``digits`` significant digits."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return "–"
        return f"{v:.{digits}g}"
    return esc(v)


def table(rows, header=None, left_cols=1) -> str:
    """An HTML table from rows of cells (strings are escaped, numbers formatted)."""
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f'<th class="{"l" if i < left_cols else ""}">{esc(h)}</th>'
                                    for i, h in enumerate(header)) + "</tr>")
    for row in rows:
        cells = []
        for i, c in enumerate(row):
            cls = ' class="l"' if i < left_cols else ""
            cells.append(f"<td{cls}>{fmt(c) if not isinstance(c, str) else esc(c)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def figure(path: Path | None, caption: str) -> str:
    if path is None:
        return ""
    return (f'<figure><img src="{esc(Path(path).name)}" alt="{esc(caption)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{_CSS}</style></head>\n<body>\n<h1>{esc(title)}</h1>\n{body}\n"
            f"</body></html>\n")


def write_text(path, text: str) -> Path:
    path = Path(path)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return path
