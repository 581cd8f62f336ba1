"""Sphinx configuration of the convviz documentation.

Build it with ``nox -s docs`` (a fresh virtualenv, TensorFlow backend, warnings as
errors). The tutorials in ``../tutorials`` are executed by sphinx-gallery during the
build; see ``getting_started.rst`` for the environment variables that make them use
the Kaggle data and ImageNet weights instead of the offline defaults.
"""

import os
import sys

sys.path.insert(0, os.path.abspath("_ext"))

import convviz  # noqa: E402

project = "convviz"
author = "the convviz authors"
copyright = "2026, the convviz authors"
version = release = convviz.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "convviz.sphinxext",
]

exclude_patterns = ["_build", "_ext", "_convviz_cache", "Thumbs.db", ".DS_Store"]
html_static_path = ["_static"]
html_css_files = ["convviz.css"]

# -- autodoc / numpydoc -------------------------------------------------------------

autodoc_member_order = "bysource"
autodoc_typehints = "none"  # numpydoc's Parameters sections say the types already
autodoc_default_options = {"members": True}
# Methods are documented by autodoc's :members:; numpydoc's own member tables would
# list them a second time.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

# -- sphinx-gallery -----------------------------------------------------------------

sphinx_gallery_conf = {
    "examples_dirs": "../tutorials",
    "gallery_dirs": "auto_tutorials",
    # Every numbered tutorial is executed; _setup-style helpers are not pages.
    "filename_pattern": r"/\d\d_\w+\.py$",
    "ignore_pattern": r"(__init__|/_\w+)\.py$",
    "within_subsection_order": "FileNameSortKey",
    # convviz draws on matplotlib Figures without pyplot: the second scraper finds
    # them among the tutorial's variables (the matplotlib one catches pyplot figures).
    "image_scrapers": ("matplotlib", "figure_scraper.scrape"),
    # A figure as a block's last expression is shown as an image, not as "<Figure ...>".
    "ignore_repr_types": r"matplotlib\.(figure|axes|text)",
    # A tutorial that raises fails the build at once instead of after all the others.
    "abort_on_example_error": True,
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "write_computation_times": False,
}

# -- HTML ---------------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"convviz {release}"
# Tutorial pages give the on-page table of contents' column to their code and output.
_tutorial_pages = {
    f"auto_tutorials/{os.path.splitext(name)[0]}": []
    for name in sorted(os.listdir(os.path.join(os.path.dirname(__file__), "..", "tutorials")))
    if name[:2].isdigit() and name.endswith(".py")
}
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": {"**": ["page-toc"], **_tutorial_pages},
}
html_sidebars = {"index": [], "getting_started": []}
