"""A Sphinx extension that renders convviz galleries while the docs build.

Add ``"convviz.sphinxext"`` to ``extensions`` in ``conf.py``, then in any page::

    .. convviz-gallery::
       :model: efficientnet_lite0
       :images: skimage:chelsea skimage:coffee
       :kinds: gradcam activations
       :layers: stem_conv block4a_expand_conv top_conv

``:model:`` is a built-in model name (see :data:`convviz.sources.BUILTIN_MODELS`) or a
``.keras`` file, and ``:images:`` are image files or ``skimage:NAME`` photos; file
paths are relative to the page (or to the source folder when they start with ``/``).
Other options mirror :func:`convviz.gallery`: ``:kinds:`` (any of
:func:`convviz.galleries.kinds`, which include every registered CAM method, e.g.
``gradcam_plusplus``, ``cam_methods``, the methods side by side, and every pixel
attribution method, e.g. ``integrated_gradients``), ``:layers:``,
``:filter-layers:``, ``:filters:``, ``:filter-steps:``, ``:max-channels:``,
``:cam-layer:`` and ``:class-names:`` (comma-separated).

Each figure links to its PNG, so a wide one (``cam_methods``, an attribution method's)
opens at full size.
Figures are cached between builds in ``convviz_gallery_cache`` (default
``_convviz_cache`` in the source folder; keep it out of version control), keyed by
the options, the bytes of the model and image files, the Keras backend and the
convviz version, so an unchanged directive costs nothing on the next build.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib

from docutils import nodes
from docutils.parsers.rst import Directive, directives

__all__ = ["GalleryDirective", "setup"]


def _words(text: str | None) -> list[str]:
    return [] if not text else text.replace(",", " ").split()


def _comma_list(text: str | None) -> list[str]:
    return [] if not text else [t.strip() for t in text.split(",") if t.strip()]


class GalleryDirective(Directive):
    """``.. convviz-gallery::`` — figures of a model on images, rendered at build time."""

    has_content = False
    option_spec = {
        "model": directives.unchanged_required,
        "images": directives.unchanged_required,
        "kinds": directives.unchanged,
        "layers": directives.unchanged,
        "filter-layers": directives.unchanged,
        "filters": directives.positive_int,
        "filter-steps": directives.positive_int,
        "max-channels": directives.positive_int,
        "cam-layer": directives.unchanged,
        "class-names": directives.unchanged,
    }

    def run(self):
        env = self.state.document.settings.env
        for required in ("model", "images"):
            if not self.options.get(required):
                raise self.error(f"convviz-gallery needs a :{required}: option.")
        try:
            model, model_files = self._model(env)
            images, image_files = self._images(env)
            for path in model_files + image_files:
                env.note_dependency(path)
            kinds = _words(self.options.get("kinds")) or None
            settings = {
                "kinds": kinds,
                "layers": _words(self.options.get("layers")) or None,
                "filter_layers": _words(self.options.get("filter-layers")) or None,
                "filters": self.options.get("filters", 16),
                "filter_steps": self.options.get("filter-steps", 30),
                "max_channels": self.options.get("max-channels", 64),
                "class_names": _comma_list(self.options.get("class-names")) or None,
            }
            cam_layer = (self.options.get("cam-layer") or "").strip()
            if cam_layer:  # only when given, so that other directives keep their cache keys
                settings["cam_layer"] = cam_layer
            folder = self._render(env, model, model_files, images, image_files, settings)
        except Exception as err:  # a gallery error becomes a build error at this line
            raise self.error(f"convviz-gallery failed: {type(err).__name__}: {err}") from err
        return self._nodes(env, folder)

    # -- inputs ---------------------------------------------------------------------

    def _path(self, env, text: str) -> str:
        _, absolute = env.relfn2path(text, env.docname)
        return absolute

    def _model(self, env):
        from convviz.sources import BUILTIN_MODELS

        spec = self.options["model"].strip()
        if spec in BUILTIN_MODELS:
            return spec, []
        path = self._path(env, spec)
        return path, [path]

    def _images(self, env):
        specs, files = [], []
        for word in _words(self.options["images"]):
            if word.startswith("skimage:"):
                specs.append(word)
            else:
                path = self._path(env, word)
                specs.append(path)
                files.append(path)
        return specs, files

    # -- rendering ------------------------------------------------------------------

    def _render(self, env, model, model_files, images, image_files, settings) -> pathlib.Path:
        import keras

        import convviz
        from convviz.galleries import gallery

        digest = hashlib.sha256()
        digest.update(json.dumps(
            [convviz.__version__, keras.backend.backend(), model, images, settings], sort_keys=True
        ).encode())
        for path in model_files + image_files:
            if os.path.isfile(path):
                digest.update(pathlib.Path(path).read_bytes())
        cache = pathlib.Path(env.srcdir) / env.config.convviz_gallery_cache
        folder = cache / digest.hexdigest()[:16]
        if not (folder / "gallery.json").is_file():
            from sphinx.util import logging

            logging.getLogger(__name__).info(f"convviz: rendering a gallery of {model} into {folder}")
            gallery(model, images, folder, overwrite=True, verbose=False, **settings)
        return folder

    def _nodes(self, env, folder: pathlib.Path):
        from PIL import Image

        manifest = json.loads((folder / "gallery.json").read_text(encoding="utf-8"))
        relative = folder.relative_to(pathlib.Path(env.srcdir)).as_posix()
        container = nodes.container(classes=["convviz-gallery"])
        for fig in manifest["figures"]:
            figure = nodes.figure(classes=["convviz-figure", f"convviz-{fig['kind']}"])
            figure["align"] = "center"
            with Image.open(folder / fig["file"]) as picture:
                width = picture.width
            # Its own width, so that Sphinx links the picture to itself (html_scaled_image_link):
            # a wide figure shrunk to the page opens at full size.
            figure += nodes.image(uri=f"/{relative}/{fig['file']}", alt=fig["title"], width=f"{width}px")
            caption = nodes.caption()
            caption += nodes.strong(text=fig["title"])
            caption += nodes.Text(" \u2014 " + fig["caption"])
            figure += caption
            container += figure
        return [container]


def setup(app):
    """Register the ``convviz-gallery`` directive and its cache setting."""
    import convviz

    app.add_config_value("convviz_gallery_cache", "_convviz_cache", "env")
    app.add_directive("convviz-gallery", GalleryDirective)
    return {"version": convviz.__version__, "parallel_read_safe": True, "parallel_write_safe": True}
