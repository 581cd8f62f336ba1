"""The ``index.html`` of a gallery or an evaluation report: inline CSS, relative
links, captions escaped."""

from __future__ import annotations

import datetime
import html
from typing import NamedTuple

import keras

from convviz._version import __version__

__all__ = ["PageData", "model_info", "page", "table"]


class PageData(NamedTuple):
    """What a page shows: the model's name, its facts (:func:`model_info`) and the
    figures (objects with ``kind``, ``file``, ``title``, ``caption`` and ``group``)."""

    model: str
    info: dict
    figures: list


def model_info(model, inspector, n_images: int) -> dict:
    """The model facts a page shows under its heading."""
    return {
        "model": model.name,
        "parameters": int(model.count_params()),
        "input_shape": list(inspector.input_shape),
        "layers": len(inspector.layers()),
        "images": n_images,
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "convviz": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def shape_text(shape) -> str:
    """``(h, w, c)`` as ``h×w×c``, ``?`` for unknown sizes."""
    return "\u00d7".join("?" if s is None else str(s) for s in shape)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;
max-width:1200px;padding:0 1rem;color:#222}
h1{margin-bottom:.2rem} .meta{color:#555;margin-top:0} nav a{margin-right:1rem}
section{margin-top:2.5rem} .grid{display:flex;flex-wrap:wrap;gap:1.5rem}
figure{margin:0;flex:1 1 360px;max-width:100%;border:1px solid #ddd;border-radius:6px;padding:.6rem;
background:#fafafa} figure img{width:100%;height:auto;display:block}
figcaption{font-size:.9rem;margin-top:.4rem;color:#333} figcaption b{display:block;margin-bottom:.2rem}
table{border-collapse:collapse;font-size:.85rem;margin-top:1rem} th,td{border:1px solid #ddd;padding:.25rem .5rem;
text-align:right} th:first-child,td:first-child{text-align:left} th{background:#f0f0f0}
"""


def table(header: list[str], rows: list[list[tuple[str, bool]]]) -> str:
    """An HTML table: ``header`` cells, then rows of ``(text, bold)`` cells, escaped."""
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td><b>{e(text)}</b></td>" if bold else f"<td>{e(text)}</td>" for text, bold in row)
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def page(result, sections: dict[str, str], *, heading: str | None = None, intro: str = "") -> str:
    """The index.html: ``result`` is a :class:`~convviz.galleries.Gallery` or a
    :class:`PageData`, ``sections`` maps each figure kind to its heading, in page
    order. ``heading`` replaces the gallery's; ``intro`` is HTML put before the
    figures (already escaped)."""
    e = html.escape
    info = result.info
    title = f"convviz: {heading}" if heading else f"convviz gallery: {result.model}"
    heading = heading or f"What {result.model} learned"
    parts = []
    for kind, title in sections.items():
        figs = [f for f in result.figures if f.kind == kind]
        if not figs:
            continue
        groups = list(dict.fromkeys(f.group for f in figs))
        blocks = []
        for group in groups:
            items = "\n".join(
                f'<figure><a href="{e(f.file)}"><img src="{e(f.file)}" alt="{e(f.title)}"></a>'
                f"<figcaption><b>{e(f.title)}</b>{e(f.caption)}</figcaption></figure>"
                for f in figs
                if f.group == group
            )
            subheading = f"<h3>{e(group)}</h3>\n" if group else ""
            blocks.append(f'{subheading}<div class="grid">\n{items}\n</div>')
        parts.append(f'<section id="{kind}"><h2>{e(title)}</h2>\n' + "\n".join(blocks) + "</section>")
    nav = " ".join(
        f'<a href="#{k}">{e(t)}</a>' for k, t in sections.items() if any(f.kind == k for f in result.figures)
    )
    meta = (
        f"{info['parameters']:,} parameters, input {shape_text(info['input_shape'])}, {info['layers']} layers; "
        f"{info['images']} image(s); Keras {info['keras']} on {info['backend']}; convviz {info['convviz']}; "
        f"{info['created']}"
    )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{e(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        f"<h1>{e(heading)}</h1>\n<p class=\"meta\">{e(meta)}</p>\n{intro}<nav>{nav}</nav>\n"
        + "\n".join(parts)
        + "\n</body></html>\n"
    )
