"""Matplotlib figures for convviz results.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot, so
nothing opens a window or touches global state; notebooks display the returned
figure, scripts pass ``save=`` or call ``fig.savefig``.

The figure functions share their options: the pictures are the first argument
(``images``, or the result to draw), everything else is keyword-only; ``ncols`` is the
number of panels (channels, patterns, images) per row; ``figsize`` is the whole
figure's ``(width, height)`` in inches, ``None`` (the default) computes it from the
content and either element may be ``None`` to compute that one alone; ``save`` also
writes the figure to a file (PNG, PDF, SVG... by extension).

This module depends on no other convviz result module: it draws any object with the
right attributes (``.images`` for filter patterns, ``.column()`` and ``.rows`` for a
sparsity table), and the result types' ``.plot()`` methods call into it.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import os
from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from convviz._inputs import _resize, to_batch
from convviz._validation import (
    _warn_deprecated,
    check_choice,
    check_positive_int,
    keyword_only,
    renamed,
)
from convviz.errors import InputError

__all__ = [
    "activation_grid",
    "activations",
    "aggregate_channels",
    "attributions",
    "augmented",
    "cam_methods",
    "filter_grid",
    "filters",
    "gradcam",
    "overlay",
    "panels",
    "sparsity",
    "standardize_channels",
]


def standardize_channels(maps: np.ndarray) -> np.ndarray:
    """The chapter's display transform, channel by channel.

    Each channel of ``maps`` (H, W, C) is standardised (zero mean, unit std), then
    ``x * 64 + 128`` and clipped to [0, 255]. Channels with no variation (all-zero
    "blank" channels in particular) stay 0, without a divide-by-zero warning.

    Returns
    -------
    numpy.ndarray
        uint8 array of the same shape.

    Examples
    --------
    >>> import numpy as np
    >>> out = standardize_channels(np.zeros((4, 4, 2)))
    >>> int(out.max())
    0
    """
    maps = np.asarray(maps, dtype=np.float64)
    mean = maps.mean(axis=(0, 1))
    std = maps.std(axis=(0, 1))
    alive = std > 0
    scaled = np.zeros_like(maps)
    scaled[..., alive] = (maps[..., alive] - mean[alive]) / std[alive] * 64 + 128
    return np.clip(scaled, 0, 255).astype(np.uint8)


@renamed(images_per_row="ncols")
@keyword_only(1, "ncols")
def activation_grid(maps: np.ndarray, *, ncols: int = 16) -> np.ndarray:
    """Tile the channels of one feature map (H, W, C) into a 2-D display grid.

    Channels go left to right, ``ncols`` per row, each transformed by
    :func:`standardize_channels`. Tiles are separated by a 1-pixel NaN gap (drawn
    as background); cells past the last channel are NaN too.

    Parameters
    ----------
    maps : numpy.ndarray
        One feature map (H, W, C).
    ncols : int
        Channels per row (16 in the chapter); fewer when there are fewer channels.
        Formerly ``images_per_row``.

    Returns
    -------
    numpy.ndarray
        float array of shape (rows * (H + 1) - 1, ncols * (W + 1) - 1).
    """
    ncols = check_positive_int(ncols, "ncols")
    maps = np.asarray(maps)
    if maps.ndim != 3:
        raise InputError(f"activation_grid expects one feature map (H, W, C), got shape {maps.shape}.")
    h, w, c = maps.shape
    per_row = max(1, min(ncols, c))
    rows = -(-c // per_row)
    grid = np.full((rows * (h + 1) - 1, per_row * (w + 1) - 1), np.nan)
    tiles = standardize_channels(maps)
    for k in range(c):
        r, col = divmod(k, per_row)
        grid[r * (h + 1) : r * (h + 1) + h, col * (w + 1) : col * (w + 1) + w] = tiles[..., k]
    return grid


@renamed(columns="ncols")
@keyword_only(1, "ncols", "margin")
def filter_grid(images, *, ncols: int | None = None, margin: int = 5) -> np.ndarray:
    """Tile patterns into one image, the chapter's way: black ``margin``-pixel gaps.

    Parameters
    ----------
    images : FilterPatterns or numpy.ndarray
        A result of :func:`convviz.filters` (anything with an ``.images`` array) or
        (N, H, W, C) uint8 images.
    ncols : int, optional
        Images per row. Default: ``ceil(sqrt(N))`` (8 for the chapter's 64 filters).
        Formerly ``columns``.
    margin : int
        Gap between tiles in pixels (the chapter: 5).

    Returns
    -------
    numpy.ndarray
        uint8 (rows * H + (rows - 1) * margin, ncols * W + (ncols - 1) * margin, C).

    Examples
    --------
    >>> import numpy as np
    >>> filter_grid(np.zeros((64, 150, 150, 3), "uint8")).shape
    (1235, 1235, 3)
    """
    images = np.asarray(getattr(images, "images", images))
    if images.ndim != 4 or len(images) == 0:
        raise InputError(f"Expected (N, H, W, C) images with N >= 1; got shape {images.shape}.")
    n, h, w, c = images.shape
    ncols = math.ceil(math.sqrt(n)) if ncols is None else check_positive_int(ncols, "ncols")
    ncols = min(ncols, n)
    if isinstance(margin, (bool, np.bool_)) or not isinstance(margin, numbers.Integral) or margin < 0:
        raise InputError(f"margin must be a non-negative integer (0 turns it off); got {margin!r}.")
    margin = int(margin)
    rows = -(-n // ncols)
    shape = (rows * h + (rows - 1) * margin, ncols * w + (ncols - 1) * margin, c)
    grid = np.zeros(shape, images.dtype)
    for k in range(n):
        r, col = divmod(k, ncols)
        y, x = r * (h + margin), col * (w + margin)
        grid[y : y + h, x : x + w] = images[k]
    return grid


# -- shared options ---------------------------------------------------------------------


def _save(fig: Figure, save) -> Figure:
    if save is not None:
        folder = os.path.dirname(os.fspath(save))
        if folder:
            os.makedirs(folder, exist_ok=True)
        fig.savefig(save, dpi=fig.dpi, bbox_inches="tight")
    return fig


def _figsize(figsize) -> tuple[float | None, float | None]:
    """Check ``figsize``: None, or (width, height) in inches where either may be None."""
    if figsize is None:
        return None, None
    try:
        width, height = figsize
    except (TypeError, ValueError):
        width = height = math.nan
    for v in (width, height):
        ok = v is None or (
            isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) and v > 0
        )
        if not ok:
            raise InputError(
                f"figsize must be None or (width, height) in inches, positive numbers "
                f"(either may be None to compute it); got {figsize!r}."
            )
    return (None if width is None else float(width)), (None if height is None else float(height))


class _PerPanel:
    """The old ``panel=`` of :func:`gradcam`: inches per panel, resolved once the grid is known."""

    def __init__(self, inches):
        self.inches = inches


def _legacy_figsize(convert):
    """Accept a figure's old size keywords (the parameters of ``convert``) for one release.

    They become ``figsize=convert(**old)``, with a DeprecationWarning.
    """
    old = tuple(inspect.signature(convert).parameters)

    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            given = {name: kwargs.pop(name) for name in old if name in kwargs}
            if given:
                names = ", ".join(f"{name}=" for name in given)
                if kwargs.get("figsize") is not None:
                    raise InputError(f"{fn.__name__}() got {names} and figsize=; use figsize= only.")
                _warn_deprecated(
                    f"{fn.__name__}({names}...) is deprecated; use figsize=(width, height) "
                    "instead (either may be None to compute it from the content)."
                )
                kwargs["figsize"] = convert(**given)
            return fn(*args, **kwargs)

        return inner

    return wrap


# -- figures ----------------------------------------------------------------------------


@renamed(images_per_row="ncols")
@_legacy_figsize(lambda width: (width, None))
@keyword_only(1, "layers")
def activations(
    acts: Mapping[str, np.ndarray],
    *,
    layers=None,
    image_index: int = 0,
    ncols: int = 16,
    cmap: str = "viridis",
    figsize=None,
    save=None,
) -> Figure:
    """The chapter's activation figure: one grid of channels per layer.

    Parameters
    ----------
    acts : mapping
        The result of :func:`convviz.activations` (layer name -> (N, H, W, C)).
    layers : list of str, optional
        Which layers to draw, in order. Default: every layer in ``acts`` whose
        output is a spatial feature map.
    image_index : int
        Which image of the batch to draw.
    ncols : int
        Channels per grid row (16 in the chapter). Formerly ``images_per_row``.
    cmap : str
        Matplotlib colormap (the chapter uses viridis).
    figsize : (width, height), optional
        The whole figure in inches. Default: 12 inches wide, each layer panel as high
        as its grid needs at that width; ``(width, None)`` keeps that rule at another
        width (the old ``width=``).
    save : path, optional
        Also write the figure there (PNG, PDF, SVG... by extension).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> fig = activations({"conv": np.random.rand(1, 8, 8, 32)})
    >>> len(fig.axes)
    1
    """
    if not isinstance(acts, Mapping):
        raise InputError(
            f"plot.activations draws {{layer name: (N, H, W, C) array}}, such as what "
            f"convviz.activations returns; got {type(acts).__name__}."
        )
    width, height = _figsize(figsize)
    ncols = check_positive_int(ncols, "ncols")
    if layers is None:
        layers = [name for name, a in acts.items() if np.ndim(a) == 4]
    elif isinstance(layers, str):
        layers = [layers]
    if not layers:
        raise InputError("No spatial feature maps to draw: every array must be (N, H, W, C).")
    grids = []
    for name in layers:
        if name not in acts:
            raise InputError(f"No activations for layer {name!r}; available: {', '.join(acts)}.")
        a = np.asarray(acts[name])
        if a.ndim != 4:
            raise InputError(f"Layer {name!r} output has shape {a.shape}; only (N, H, W, C) maps can be drawn.")
        if not -a.shape[0] <= image_index < a.shape[0]:
            raise InputError(f"image_index={image_index} but the batch holds {a.shape[0]} images.")
        grids.append((name, a.shape[1:], activation_grid(a[image_index], ncols=ncols)))

    title_in = 0.35
    width = 12.0 if width is None else width
    heights = [width * g.shape[0] / g.shape[1] + title_in for _, _, g in grids]
    fig = Figure(figsize=(width, sum(heights) if height is None else height), layout="constrained")
    axes = fig.subplots(len(grids), 1, height_ratios=heights, squeeze=False)[:, 0]
    for ax, (name, shape, grid) in zip(axes, grids):
        ax.imshow(grid, cmap=cmap, vmin=0, vmax=255, interpolation="nearest", aspect="equal")
        ax.set_title(f"{name}  {shape[0]}\u00d7{shape[1]}\u00d7{shape[2]}", loc="left", fontsize=10)
        ax.set_axis_off()
    return _save(fig, save)


def _colormap(name: str):
    import matplotlib

    return matplotlib.colormaps[name]


def _pixels(picture: np.ndarray) -> np.ndarray:
    """A picture as float64 0-255 (0-1 floats are scaled up)."""
    picture = picture.astype(np.float64)
    return picture * 255.0 if picture.max() <= 1.0 else picture


def _rescaled(mixed: np.ndarray) -> np.ndarray:
    """uint8 0-255 from any range, as ``keras.utils.array_to_img`` scales."""
    mixed = mixed - mixed.min()
    top = mixed.max()
    if top > 0:
        mixed *= 255.0 / top
    return mixed.astype(np.uint8)


def _overlay_one(picture: np.ndarray, heatmap: np.ndarray, alpha: float, cmap) -> np.ndarray:
    picture = _pixels(picture)
    heatmap = np.asarray(heatmap, np.float32)  # _resize reads float32 planes
    resized = np.clip(_resize(heatmap[None, ..., None], picture.shape[:2])[0, ..., 0], 0, 1)
    colored = cmap(np.uint8(255 * resized))[..., :3] * 255.0
    return _rescaled(colored * alpha + picture)


@renamed(image="images", heatmap="heatmaps")
def overlay(images, heatmaps, *, alpha: float = 0.4, cmap: str = "jet") -> np.ndarray:
    """The chapter's superimposed image: a colored heatmap over the picture.

    Each heatmap is resized (bilinear) to its image, colored with ``cmap`` (jet),
    scaled to 0-255 and added with weight ``alpha`` to the image; the sum is rescaled
    to 0-255 as ``keras.utils.array_to_img`` does, image by image.

    Parameters
    ----------
    images : image or batch of images
        Any form :func:`convviz.activations` accepts (0-255 pixels, or 0-1 floats
        which are scaled up). Formerly ``image``.
    heatmaps : numpy.ndarray
        One (h, w) map for one image, or (N, h, w) maps for N images; values in
        [0, 1]. Formerly ``heatmap``.

    Returns
    -------
    numpy.ndarray
        uint8 (H, W, 3) for one (h, w) heatmap, (N, H, W, 3) for (N, h, w) heatmaps.

    Examples
    --------
    >>> import numpy as np
    >>> overlay(np.zeros((32, 32, 3), "uint8"), np.eye(8)).shape
    (32, 32, 3)
    >>> overlay(np.zeros((2, 32, 32, 3), "uint8"), np.zeros((2, 8, 8))).shape
    (2, 32, 32, 3)
    """
    pictures = to_batch(images, channels=3)
    heatmaps = np.asarray(heatmaps, dtype=np.float32)
    colormap = _colormap(cmap)
    if heatmaps.ndim == 2:
        if pictures.shape[0] != 1:
            raise InputError(
                f"overlay got one (h, w) heatmap for a batch of {pictures.shape[0]} images; "
                "pass (N, h, w) heatmaps."
            )
        return _overlay_one(pictures[0], heatmaps, alpha, colormap)
    if heatmaps.ndim != 3:
        raise InputError(f"overlay takes (h, w) or (N, h, w) heatmaps, got shape {heatmaps.shape}.")
    if len(heatmaps) != len(pictures):
        raise InputError(f"{len(pictures)} images but {len(heatmaps)} heatmaps.")
    return np.stack([_overlay_one(p, h, alpha, colormap) for p, h in zip(pictures, heatmaps)])


@renamed(columns="ncols")
@_legacy_figsize(lambda panel: _PerPanel(panel))
def gradcam(
    images,
    heatmaps,
    *,
    titles=None,
    alpha: float = 0.4,
    cmap: str = "jet",
    ncols: int = 4,
    figsize=None,
    save=None,
) -> Figure:
    """Grad-CAM overlays for one image or a grid of several.

    Parameters
    ----------
    images : image or list/batch of images
        The pictures, any form :func:`convviz.activations` accepts.
    heatmaps : numpy.ndarray
        (N, h, w) or (h, w) maps in [0, 1], e.g. from :func:`convviz.gradcam`.
    titles : list of str, optional
        One caption per image (class and probability, say).
    alpha : float
        Heatmap weight (0.4 in the chapter).
    cmap : str
        Heatmap colormap (jet in the chapter).
    ncols : int
        Images per row (fewer when there are fewer images). Formerly ``columns``.
    figsize : (width, height), optional
        The whole figure in inches. Default: 3-inch square panels; ``(width, None)``
        keeps the panels square at that width. The old ``panel=p`` is
        ``figsize=(p * ncols, p * rows)``.
    save : path, optional
        Also write the figure there.

    Returns
    -------
    matplotlib.figure.Figure
    """
    per_panel = figsize.inches if isinstance(figsize, _PerPanel) else None
    width, height = _figsize(None if per_panel is not None else figsize)
    ncols = check_positive_int(ncols, "ncols")
    pictures = to_batch(images, channels=3)
    heatmaps = np.asarray(heatmaps)
    if heatmaps.ndim == 2:
        heatmaps = heatmaps[None]
    if len(pictures) != len(heatmaps):
        raise InputError(f"{len(pictures)} images but {len(heatmaps)} heatmaps.")
    if titles is not None and len(titles) != len(pictures):
        raise InputError(f"{len(pictures)} images but {len(titles)} titles.")
    n = len(pictures)
    cols = max(1, min(ncols, n))
    rows = -(-n // cols)
    if per_panel is not None:
        width, height = _figsize((per_panel * cols, per_panel * rows))
    fig, axes = _panel_grid(width, height, rows, cols)
    colormap = _colormap(cmap)
    for i, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if i < n:
            _draw_overlay(ax, pictures[i], heatmaps[i], alpha, colormap, None if titles is None else titles[i])
    return _save(fig, save)


def _panel_grid(width, height, rows: int, cols: int, panel: float = 3.0):
    """A constrained-layout Figure of ``rows`` x ``cols`` square panels and its (rows, cols)
    axes: ``panel`` inches each, or as many as ``width`` (else ``height``) allows."""
    if width is not None or height is not None:
        panel = width / cols if width else height / rows
    size = (panel * cols if width is None else width, panel * rows if height is None else height)
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.subplots(rows, cols, squeeze=False)


def _draw_overlay(ax, picture, heatmap, alpha: float, colormap, title=None) -> None:
    ax.imshow(_overlay_one(picture, np.asarray(heatmap, np.float32), alpha, colormap))
    if title is not None:
        ax.set_title(title, fontsize=10)


def cam_methods(
    images,
    maps: Mapping,
    *,
    titles=None,
    row_titles=None,
    alpha: float = 0.4,
    cmap: str = "jet",
    figsize=None,
    save=None,
) -> Figure:
    """Several CAM methods side by side: one row per image, one column per method,
    each panel the method's map over the image (the overlay of :func:`gradcam`).

    Parameters
    ----------
    images : image or list/batch of images
        The N pictures, any form :func:`convviz.activations` accepts (an
        Explanation's ``.images``, say).
    maps : mapping
        Column heading (a method's title) -> that method's (N, h, w) maps in [0, 1],
        or any object with such a ``.maps`` (an :class:`~convviz.Explanation`), in
        column order. Maps may differ in size; each is resized to its image.
    titles : sequence of str, optional
        Column headings instead of the keys of ``maps``.
    row_titles : sequence of str, optional
        One label per image, left of its row (the image and its explained class, say).
    alpha : float
        Heatmap weight (0.4 in the chapter).
    cmap : str
        Heatmap colormap (jet in the chapter).
    figsize : (width, height), optional
        The whole figure in inches. Default: 3-inch square panels; ``(width, None)``
        keeps the panels square at that width.
    save : path, optional
        Also write the figure there (PNG, PDF, SVG... by extension).

    Returns
    -------
    matplotlib.figure.Figure
        N x M axes, row by row; the first row carries the column headings and the
        first column the row labels.

    Examples
    --------
    >>> import numpy as np
    >>> images = np.zeros((2, 32, 32, 3), "uint8")
    >>> maps = {"Grad-CAM": np.random.rand(2, 4, 4), "Eigen-CAM": np.random.rand(2, 4, 4)}
    >>> fig = cam_methods(images, maps, row_titles=["cat", "coffee"])
    >>> len(fig.axes), fig.axes[1].get_title(), fig.axes[2].get_ylabel()
    (4, 'Eigen-CAM', 'coffee')

    Explanations of the same images draw as they are:

    >>> import keras, convviz  # doctest: +SKIP
    >>> results = {convviz.methods.get_method(m).title: convviz.explain(model, images, method=m)
    ...            for m in ("gradcam", "layercam", "scorecam")}  # doctest: +SKIP
    >>> fig = cam_methods(images, results)  # doctest: +SKIP
    """
    width, height = _figsize(figsize)
    if not isinstance(maps, Mapping) or not maps:
        raise InputError("cam_methods takes a non-empty mapping of column title -> (N, h, w) maps or Explanation.")
    pictures = to_batch(images, channels=3)
    n = len(pictures)
    columns = []
    for key, value in maps.items():
        heat = np.asarray(getattr(value, "maps", value), np.float32)
        if heat.ndim == 2 and n == 1:
            heat = heat[None]
        if heat.ndim != 3 or len(heat) != n:
            raise InputError(f"{n} images but the maps of {key!r} have shape {heat.shape}; expected ({n}, h, w).")
        columns.append(heat)
    titles = [str(k) for k in maps] if titles is None else list(titles)
    if len(titles) != len(columns):
        raise InputError(f"{len(columns)} columns of maps but {len(titles)} titles.")
    if row_titles is not None and len(row_titles) != n:
        raise InputError(f"{n} images but {len(row_titles)} row_titles.")
    fig, axes = _panel_grid(width, height, n, len(columns))
    colormap = _colormap(cmap)
    for i, row in enumerate(axes):
        for j, ax in enumerate(row):
            _draw_overlay(ax, pictures[i], columns[j][i], alpha, colormap, titles[j] if i == 0 else None)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.spines[:].set_visible(False)  # no frame, but room for the row label
        if row_titles is not None:
            row[0].set_ylabel(str(row_titles[i]), fontsize=10)
    return _save(fig, save)


# -- pixel attributions -----------------------------------------------------------------

_AGGREGATIONS = {
    "sum": lambda m: m.sum(axis=-1),
    "abs_sum": lambda m: np.abs(m).sum(axis=-1),
    "max_abs": lambda m: np.abs(m).max(axis=-1),
}


def aggregate_channels(maps, how: str = "sum") -> np.ndarray:
    """One attribution per pixel from one per input channel.

    Parameters
    ----------
    maps : numpy.ndarray
        (N, H, W, C) attributions (an :class:`~convviz.methods.attribution.Attributions`'
        ``maps``), or (N, H, W), returned as they are (already one value per pixel).
    how : {"sum", "abs_sum", "max_abs"}
        ``"sum"``: the channels' sum, signed; it keeps integrated gradients'
        completeness (the map's total is the score's change). ``"abs_sum"``: the sum
        of the channels' magnitudes. ``"max_abs"``: the largest magnitude among the
        channels (Simonyan et al.'s saliency map). The last two are not negative.

    Returns
    -------
    numpy.ndarray
        (N, H, W) float32, summed in float64.

    Examples
    --------
    >>> import numpy as np
    >>> maps = np.array([1.0, -3.0, 0.5]).reshape(1, 1, 1, 3)
    >>> [float(aggregate_channels(maps, h)[0, 0, 0]) for h in ("sum", "abs_sum", "max_abs")]
    [-1.5, 4.5, 3.0]
    """
    check_choice(how, "aggregate", _AGGREGATIONS)
    maps = np.asarray(maps)
    if maps.ndim == 3:
        return maps.astype(np.float32)
    if maps.ndim != 4:
        raise InputError(f"Attributions must be (N, H, W, C) or (N, H, W), got shape {maps.shape}.")
    return _AGGREGATIONS[how](maps.astype(np.float64)).astype(np.float32)


def _percentile(value) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and 0 < value <= 100
    if not ok:
        raise InputError(f"percentile must be a number in (0, 100]; got {value!r}.")
    return float(value)


def _clip_limits(maps: np.ndarray, percentile: float) -> np.ndarray:
    """(N,) each map's colour limit: the ``percentile``-th percentile of its magnitudes;
    its maximum where that is 0 (a mostly empty map), 1 for an all-zero map."""
    magnitudes = np.abs(maps.astype(np.float64)).reshape(len(maps), -1)
    limits = np.percentile(magnitudes, percentile, axis=1)
    limits = np.where(limits > 0, limits, magnitudes.max(axis=1))
    return np.where(limits > 0, limits, 1.0)


def _image_panel(ax, picture, attribution, limit, cmap, alpha):
    picture = _pixels(picture)
    inside = picture.min() >= 0 and picture.max() <= 255  # a photo as it is; anything else rescaled
    ax.imshow(np.round(picture).astype(np.uint8) if inside else _rescaled(picture))


def _signed_panel(ax, picture, attribution, limit, cmap, alpha):
    return ax.imshow(np.clip(attribution, -limit, limit), cmap=cmap, vmin=-limit, vmax=limit)


def _absolute_panel(ax, picture, attribution, limit, cmap, alpha):
    return ax.imshow(np.minimum(np.abs(attribution), limit), cmap=cmap, vmin=0.0, vmax=limit)


def _overlay_panel(ax, picture, attribution, limit, cmap, alpha):
    ax.imshow(_overlay_one(picture, np.minimum(np.abs(attribution) / limit, 1.0), alpha, cmap))


_VIEWS = {  # view -> (drawing, default colormap, column heading of the "all" view)
    "image": (_image_panel, None, "image"),
    "signed": (_signed_panel, "RdBu_r", "signed"),
    "absolute": (_absolute_panel, "inferno", "absolute"),
    "overlay": (_overlay_panel, "jet", "overlay"),
}


def _view_colormaps(view: str, cmap) -> dict:
    """The colormap of each drawn view: the defaults, ``cmap`` (a name for every view,
    or a mapping of view -> name) over them."""
    drawn = ("signed", "absolute", "overlay") if view == "all" else (view,)
    chosen = {v: _VIEWS[v][1] for v in drawn}
    if isinstance(cmap, Mapping):
        unknown = sorted(set(cmap) - set(drawn))
        if unknown:
            raise InputError(f"cmap names views {unknown} that the {view!r} view does not draw; it draws {list(drawn)}.")
        chosen.update(cmap)
    elif cmap is not None:
        chosen = dict.fromkeys(drawn, cmap)
    return {v: _colormap(name) for v, name in chosen.items()}


def attributions(
    images,
    maps,
    *,
    view: str = "signed",
    aggregate: str = "sum",
    percentile: float = 99.0,
    titles=None,
    ncols: int = 4,
    alpha: float = 0.5,
    cmap=None,
    figsize=None,
    save=None,
) -> Figure:
    """Pixel attributions (:func:`convviz.attribute`) drawn the usual ways.

    Each image's map is clipped at the ``percentile``-th percentile of its magnitudes,
    so that a few extreme pixels (gradients have them) do not wash out the rest; every
    image gets its own limit, shown by its colour bar.

    Parameters
    ----------
    images : image or list/batch of images
        The N pictures, any form :func:`convviz.activations` accepts (an
        Attributions' ``.images``, say).
    maps : numpy.ndarray
        (N, H, W, C) attributions, one per input channel, combined by ``aggregate``;
        or (N, H, W), one per pixel, drawn as they are. Usually at the images' size
        (the overlay resizes them otherwise).
    view : {"signed", "absolute", "overlay", "all"}
        ``"signed"``: a diverging colormap centred at 0 (red for evidence for the
        class, blue against), limits symmetric at plus and minus the clip limit.
        ``"absolute"``: the magnitude, from 0 to the clip limit, in a sequential
        colormap. ``"overlay"``: the magnitude scaled to [0, 1] by the clip limit,
        over the image (the overlay of :func:`gradcam`). ``"all"``: a row per image,
        the image then those three.
    aggregate : {"sum", "abs_sum", "max_abs"}
        How the channels of (N, H, W, C) maps combine; see :func:`aggregate_channels`.
    percentile : float
        In (0, 100]: the clip limit's percentile of each map's magnitudes (100: its
        maximum, no clipping). Where that percentile is 0 (a map mostly 0), the
        maximum.
    titles : sequence of str, optional
        One per image: above its panel, or left of its row in the ``"all"`` view.
    ncols : int
        Images per row (fewer when there are fewer images); the ``"all"`` view always
        has four columns.
    alpha : float
        The overlay's heatmap weight.
    cmap : str or mapping, optional
        A colormap for the drawn views, or a mapping of view -> colormap (``{"signed":
        "bwr"}``). Default: ``"RdBu_r"`` (signed), ``"inferno"`` (absolute), ``"jet"``
        (overlay).
    figsize : (width, height), optional
        The whole figure in inches. Default: 3-inch square panels, with room for the
        colour bars; ``(width, None)`` keeps the panels square at that width.
    save : path, optional
        Also write the figure there (PNG, PDF, SVG... by extension).

    Returns
    -------
    matplotlib.figure.Figure
        The signed and absolute panels each have a colour bar (an axis of its own in
        ``fig.axes``).

    Examples
    --------
    >>> import numpy as np
    >>> images = np.zeros((2, 16, 16, 3), "uint8")
    >>> maps = np.random.default_rng(0).normal(size=(2, 16, 16, 3))
    >>> fig = attributions(images, maps, titles=["cat", "cup"])
    >>> [ax.get_title() for ax in fig.axes[:2]]  # two panels, then their colour bars
    ['cat', 'cup']
    >>> lo, hi = fig.axes[0].images[0].get_clim()
    >>> bool(lo == -hi)
    True
    >>> len(attributions(images, maps, view="all").axes)  # 2 rows of 4 panels, 2 colour bars each
    12
    """
    if not isinstance(view, str) or view not in ("signed", "absolute", "overlay", "all"):
        raise InputError(f"view must be 'signed', 'absolute', 'overlay' or 'all'; got {view!r}.")
    heat = aggregate_channels(maps, aggregate)
    limits = _clip_limits(heat, _percentile(percentile))
    width, height = _figsize(figsize)
    ncols = check_positive_int(ncols, "ncols")
    colormaps = _view_colormaps(view, cmap)
    pictures = to_batch(images, channels=3)
    n = len(pictures)
    if len(heat) != n:
        raise InputError(f"{n} images but {len(heat)} attribution maps.")
    if titles is not None and len(titles) != n:
        raise InputError(f"{n} images but {len(titles)} titles.")
    colorbars = view in ("signed", "absolute", "all")
    if view == "all":
        rows, cols = n, 4
        cells = [(i, v) for i in range(n) for v in _VIEWS]
    else:
        cols = max(1, min(ncols, n))
        rows = -(-n // cols)
        cells = [(i, view) for i in range(n)]
    fig, axes = _panel_grid(width, height, rows, cols, panel=3.5 if colorbars else 3.0)
    axes = axes.ravel()
    for ax, (i, v) in zip(axes, cells):
        draw, _, heading = _VIEWS[v]
        shown = draw(ax, pictures[i], heat[i], limits[i], colormaps.get(v), alpha)
        if shown is not None:
            # Tick labels without a separate "1e-5" offset above the bar (it shifts the panels).
            fig.colorbar(shown, ax=ax, shrink=0.8, pad=0.02, format="%.3g")
        if view != "all":
            if titles is not None:
                ax.set_title(str(titles[i]), fontsize=10)
            continue
        if i == 0:
            ax.set_title(heading, fontsize=10)
        if v == "image" and titles is not None:
            ax.set_ylabel(str(titles[i]), fontsize=10)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.spines[:].set_visible(False)  # no frame, but room for a row label
    return _save(fig, save)


def _sparsity_size(width=None, height=None):
    return (width, height)


@_legacy_figsize(_sparsity_size)
@keyword_only(1, "labels")
def sparsity(tables, *, labels=None, figsize=None, save=None) -> Figure:
    """Blank-channel and zero fractions against depth, for one or several models.

    Parameters
    ----------
    tables : SparsityTable or list of SparsityTable
        Results of :func:`convviz.sparsity` (e.g. trained vs untrained, scratch vs
        fine-tuned), drawn on one axis: blank-channel fraction solid, zero fraction
        dashed. Any object with ``.column(name)``, ``.rows`` and ``.images`` works.
    labels : list of str, optional
        One legend label per table.
    figsize : (width, height), optional
        The whole figure in inches; default ``(8, 4.5)``. Formerly ``width=`` and
        ``height=``.
    save : path, optional
        Also write the figure there.

    Returns
    -------
    matplotlib.figure.Figure
    """
    width, height = _figsize(figsize)
    if hasattr(tables, "column") and hasattr(tables, "rows"):
        tables = [tables]
    tables = list(tables)
    if not tables:
        raise InputError("plot.sparsity needs at least one table.")
    if labels is None:
        labels = [f"model {i + 1}" for i in range(len(tables))] if len(tables) > 1 else [""]
    if len(labels) != len(tables):
        raise InputError(f"{len(tables)} tables but {len(labels)} labels.")
    fig = Figure(figsize=(width or 8.0, height or 4.5), layout="constrained")
    ax = fig.subplots()
    for i, (table, label) in enumerate(zip(tables, labels)):
        color = f"C{i}"
        depth = table.column("depth")
        prefix = f"{label}: " if label else ""
        ax.plot(depth, table.column("blank_fraction"), "o-", color=color, label=f"{prefix}blank channels")
        ax.plot(depth, table.column("zero_fraction"), "s--", color=color, alpha=0.7, label=f"{prefix}zero activations")
    longest = max(tables, key=lambda t: len(t.rows))
    ax.set_xticks(longest.column("depth"), [r.layer for r in longest.rows], rotation=45, ha="right", fontsize=8)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("layer (shallow \u2192 deep)")
    ax.set_ylabel("fraction")
    ax.set_title(f"Activation sparsity across depth ({longest.images} images)", loc="left")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, save)


def _faded(patterns) -> np.ndarray:
    """uint8 patterns blended towards white by their normalised transparency maps."""
    maps = getattr(patterns, "transparency", None)
    if maps is None:
        raise InputError(
            "transparency=True needs a result with transparency maps: "
            "convviz.filters(..., parametrization='maco')."
        )
    images = np.asarray(patterns.images, dtype=np.float64)
    h, w = images.shape[1:3]
    top, left = (maps.shape[1] - h) // 2, (maps.shape[2] - w) // 2
    maps = maps[:, top : top + h, left : left + w]
    scale = np.percentile(maps.reshape(len(maps), -1), 99, axis=1)[:, None, None]
    alpha = np.clip(maps / np.maximum(scale, 1e-12), 0, 1)[..., None]
    return np.round(images * alpha + 255.0 * (1 - alpha)).astype(np.uint8)


@renamed(columns="ncols")
@_legacy_figsize(lambda width: (width, None))
def filters(
    patterns,
    *,
    ncols: int | None = None,
    margin: int = 5,
    title: str | None = None,
    figsize=None,
    save=None,
    transparency: bool = False,
) -> Figure:
    """The chapter's filter figure: patterns in a grid (8 x 8 for 64 filters).

    Parameters
    ----------
    patterns : FilterPatterns or numpy.ndarray
        A result of :func:`convviz.filters` or (N, H, W, C) uint8 images.
    ncols : int, optional
        Patterns per row; default ``ceil(sqrt(N))``. Formerly ``columns``.
    margin : int
        Black gap between patterns in pixels (the chapter: 5).
    title : str, optional
        Default: the layer and filter indices when ``patterns`` is a FilterPatterns.
    figsize : (width, height), optional
        The whole figure in inches. Default: 8 inches wide, as high as the grid needs
        at that width; ``(width, None)`` keeps that rule at another width (the old
        ``width=``).
    save : path, optional
        Also write the figure there (PNG, PDF, SVG... by extension).
    transparency : bool
        MaCo results only: fade each pattern towards white where its ``transparency``
        map is low (the map divided by its 99th percentile, clipped to [0, 1]), as the
        MaCo paper shows its images: what remains is where the image mattered.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> fig = filters(np.zeros((10, 20, 20, 3), "uint8"))
    >>> len(fig.axes)
    1
    """
    width, height = _figsize(figsize)
    indices = getattr(patterns, "filter_indices", None)
    if title is None and indices is not None and hasattr(patterns, "layer"):
        title = f"{patterns.layer}: filters {_describe_indices(indices)}"
    if transparency:
        patterns = _faded(patterns)
    grid = filter_grid(patterns, ncols=ncols, margin=margin)
    title_in = 0.35 if title else 0.0
    width = 8.0 if width is None else width
    if height is None:
        height = width * grid.shape[0] / grid.shape[1] + title_in
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.subplots()
    if grid.shape[-1] == 1:
        ax.imshow(grid[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(grid, interpolation="nearest")
    if title:
        ax.set_title(title, loc="left", fontsize=10)
    ax.set_axis_off()
    return _save(fig, save)


def _describe_indices(indices) -> str:
    indices = [int(i) for i in indices]
    if indices == list(range(indices[0], indices[0] + len(indices))):
        return f"{indices[0]}-{indices[-1]}" if len(indices) > 1 else str(indices[0])
    shown = ", ".join(map(str, indices[:8]))
    return shown + (", ..." if len(indices) > 8 else "")


def panels(images, *, titles=None, ncols: int = 3, figsize=None, save=None) -> Figure:
    """Pictures side by side, without axes, each under an optional title.

    Parameters
    ----------
    images : sequence of numpy.ndarray
        (H, W, C) or (H, W) pictures, any sizes: uint8 (0-255) or float (0-1); one
        channel is drawn in grey.
    titles : sequence of str, optional
        One per picture.
    ncols : int
        Pictures per row.
    figsize : (width, height), optional
        The whole figure in inches; default 3.3 inches per panel.
    save : path, optional
        Also write the figure there.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> len(panels([np.zeros((8, 8, 3), "uint8")] * 4, titles=list("abcd"), ncols=2).axes)
    4
    """
    images = [np.asarray(im) for im in images]
    if not images or any(im.ndim not in (2, 3) for im in images):
        raise InputError(f"panels takes a non-empty sequence of (H, W[, C]) pictures, got {len(images)}.")
    if titles is not None and len(titles) != len(images):
        raise InputError(f"{len(images)} pictures but {len(titles)} titles.")
    ncols = max(1, min(check_positive_int(ncols, "ncols"), len(images)))
    nrows = -(-len(images) // ncols)
    width, height = _figsize(figsize)
    fig = Figure(figsize=(width or 3.3 * ncols, height or 3.3 * nrows))
    for i, picture in enumerate(images):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        if picture.dtype != np.uint8:
            picture = np.clip(picture, 0.0, 1.0)
        if picture.ndim == 3 and picture.shape[-1] == 1:
            picture = picture[..., 0]
        ax.imshow(picture, cmap="gray")
        ax.axis("off")
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=9)
    fig.tight_layout()
    return _save(fig, save)


def augmented(examples, *, ncols: int = 3, figsize=None, save=None) -> Figure:
    """A grid of augmented versions of one image (:func:`convviz.data.plot_augmented`):
    :func:`panels` of an (N, H, W, C) batch.

    Examples
    --------
    >>> import numpy as np
    >>> len(augmented(np.zeros((4, 8, 8, 3), "uint8"), ncols=2).axes)
    4
    """
    examples = np.asarray(examples)
    if examples.ndim != 4 or len(examples) == 0:
        raise InputError(f"augmented expects a non-empty (N, H, W, C) batch, got shape {examples.shape}.")
    return panels(list(examples), ncols=ncols, figsize=figsize, save=save)
