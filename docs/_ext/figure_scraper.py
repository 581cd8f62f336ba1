"""sphinx-gallery scraper for matplotlib figures that pyplot does not know about.

convviz builds its figures with ``matplotlib.figure.Figure`` directly (no pyplot, no
global state), so sphinx-gallery's own matplotlib scraper, which asks pyplot for
open figures, never sees them. This scraper looks instead at the tutorial's global
variables after each code block (the last expression of a block lands in ``___``)
and saves every figure it has not saved before.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from matplotlib.figure import Figure
from sphinx_gallery.scrapers import figure_rst

# Figures already written, per tutorial. The figures themselves are kept (not only
# their ids) so a collected figure's id cannot be reused by a new one.
_seen: dict[str, list[Figure]] = {}


def scrape(block, block_vars, gallery_conf, **kwargs) -> str:
    """Save the figures new in this block; return the reST that shows them."""
    source = str(block_vars.get("src_file"))
    if source not in _seen:
        _seen.clear()  # a new tutorial: drop the previous one's figures
        _seen[source] = []
    seen = _seen[source]
    fresh = []
    for value in block_vars["example_globals"].values():
        if isinstance(value, Figure) and not any(value is f for f in seen + fresh):
            fresh.append(value)
    paths = []
    for fig, path in zip(fresh, block_vars["image_path_iterator"]):
        path = PurePosixPath(path)
        fig.savefig(path, bbox_inches="tight")
        paths.append(path)
        seen.append(fig)
    if not paths:
        return ""
    return figure_rst(paths, gallery_conf["src_dir"])
