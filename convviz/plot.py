"""Matplotlib figures for convviz results.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot, so
nothing opens a window or touches global state; notebooks display the returned
figure, scripts pass ``save=`` or call ``fig.savefig``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from convviz._inputs import _resize, to_batch
from convviz.errors import InputError


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


def activation_grid(maps: np.ndarray, images_per_row: int = 16) -> np.ndarray:
    """Tile the channels of one feature map (H, W, C) into a 2-D display grid.

    Channels go left to right, ``images_per_row`` per row, each transformed by
    :func:`standardize_channels`. Tiles are separated by a 1-pixel NaN gap (drawn
    as background); cells past the last channel are NaN too.

    Returns
    -------
    numpy.ndarray
        float array of shape (rows * (H + 1) - 1, images_per_row * (W + 1) - 1).
    """
    maps = np.asarray(maps)
    if maps.ndim != 3:
        raise InputError(f"activation_grid expects one feature map (H, W, C), got shape {maps.shape}.")
    h, w, c = maps.shape
    per_row = max(1, min(images_per_row, c))
    rows = -(-c // per_row)
    grid = np.full((rows * (h + 1) - 1, per_row * (w + 1) - 1), np.nan)
    tiles = standardize_channels(maps)
    for k in range(c):
        r, col = divmod(k, per_row)
        grid[r * (h + 1) : r * (h + 1) + h, col * (w + 1) : col * (w + 1) + w] = tiles[..., k]
    return grid


def _save(fig: Figure, save) -> Figure:
    if save is not None:
        folder = os.path.dirname(os.fspath(save))
        if folder:
            os.makedirs(folder, exist_ok=True)
        fig.savefig(save, dpi=fig.dpi, bbox_inches="tight")
    return fig


def activations(
    acts: Mapping[str, np.ndarray],
    layers=None,
    *,
    image_index: int = 0,
    images_per_row: int = 16,
    cmap: str = "viridis",
    width: float = 12.0,
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
    images_per_row : int
        Channels per grid row (16 in the chapter).
    cmap : str
        Matplotlib colormap (the chapter uses viridis).
    width : float
        Figure width in inches; each layer panel's height follows its grid.
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
    if layers is None:
        layers = [name for name, a in acts.items() if np.ndim(a) == 4]
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
        grids.append((name, a.shape[1:], activation_grid(a[image_index], images_per_row)))

    title_in = 0.35
    heights = [width * g.shape[0] / g.shape[1] + title_in for _, _, g in grids]
    fig = Figure(figsize=(width, sum(heights)), layout="constrained")
    axes = fig.subplots(len(grids), 1, height_ratios=heights, squeeze=False)[:, 0]
    for ax, (name, shape, grid) in zip(axes, grids):
        ax.imshow(grid, cmap=cmap, vmin=0, vmax=255, interpolation="nearest", aspect="equal")
        ax.set_title(f"{name}  {shape[0]}\u00d7{shape[1]}\u00d7{shape[2]}", loc="left", fontsize=10)
        ax.set_axis_off()
    return _save(fig, save)


def _colormap(name: str):
    import matplotlib

    return matplotlib.colormaps[name]


def overlay(image, heatmap, *, alpha: float = 0.4, cmap: str = "jet") -> np.ndarray:
    """The chapter's superimposed image: a colored heatmap over the picture.

    The heatmap is resized (bilinear) to the image, colored with ``cmap`` (jet),
    scaled to 0-255 and added with weight ``alpha`` to the image; the sum is rescaled
    to 0-255 as ``keras.utils.array_to_img`` does.

    Parameters
    ----------
    image : array-like, path or PIL image
        One image, any form :func:`convviz.activations` accepts (0-255 pixels, or
        0-1 floats which are scaled up).
    heatmap : numpy.ndarray
        (h, w) values in [0, 1].

    Returns
    -------
    numpy.ndarray
        uint8 (H, W, 3).

    Examples
    --------
    >>> import numpy as np
    >>> overlay(np.zeros((32, 32, 3), "uint8"), np.eye(8)).shape
    (32, 32, 3)
    """
    picture = to_batch(image, channels=3)
    if picture.shape[0] != 1:
        raise InputError(f"overlay takes one image, got a batch of {picture.shape[0]}.")
    picture = picture[0].astype(np.float64)
    if picture.max() <= 1.0:
        picture = picture * 255.0
    heatmap = np.asarray(heatmap, dtype=np.float32)
    if heatmap.ndim != 2:
        raise InputError(f"overlay takes one (h, w) heatmap, got shape {heatmap.shape}.")
    resized = np.clip(_resize(heatmap[None, ..., None], picture.shape[:2])[0, ..., 0], 0, 1)
    colored = _colormap(cmap)(np.uint8(255 * resized))[..., :3] * 255.0
    mixed = colored * alpha + picture
    mixed -= mixed.min()
    top = mixed.max()
    if top > 0:
        mixed *= 255.0 / top
    return mixed.astype(np.uint8)


def gradcam(
    images,
    heatmaps,
    *,
    titles=None,
    alpha: float = 0.4,
    cmap: str = "jet",
    columns: int = 4,
    panel: float = 3.0,
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
    columns : int
        Images per row.
    panel : float
        Size of each panel in inches.
    save : path, optional
        Also write the figure there.

    Returns
    -------
    matplotlib.figure.Figure
    """
    pictures = to_batch(images, channels=3)
    heatmaps = np.asarray(heatmaps)
    if heatmaps.ndim == 2:
        heatmaps = heatmaps[None]
    if len(pictures) != len(heatmaps):
        raise InputError(f"{len(pictures)} images but {len(heatmaps)} heatmaps.")
    if titles is not None and len(titles) != len(pictures):
        raise InputError(f"{len(pictures)} images but {len(titles)} titles.")
    n = len(pictures)
    cols = max(1, min(columns, n))
    rows = -(-n // cols)
    fig = Figure(figsize=(panel * cols, panel * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for i, ax in enumerate(axes):
        ax.set_axis_off()
        if i < n:
            ax.imshow(overlay(pictures[i], heatmaps[i], alpha=alpha, cmap=cmap))
            if titles is not None:
                ax.set_title(titles[i], fontsize=10)
    return _save(fig, save)


def sparsity(tables, labels=None, *, width: float = 8.0, height: float = 4.5, save=None) -> Figure:
    """Blank-channel and zero fractions against depth, for one or several models.

    Parameters
    ----------
    tables : SparsityTable or list of SparsityTable
        Results of :func:`convviz.sparsity` (e.g. trained vs untrained, scratch vs
        fine-tuned), drawn on one axis: blank-channel fraction solid, zero fraction dashed.
    labels : list of str, optional
        One legend label per table.
    save : path, optional
        Also write the figure there.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from convviz.sparsity import SparsityTable

    if isinstance(tables, SparsityTable):
        tables = [tables]
    if labels is None:
        labels = [f"model {i + 1}" for i in range(len(tables))] if len(tables) > 1 else [""]
    if len(labels) != len(tables):
        raise InputError(f"{len(tables)} tables but {len(labels)} labels.")
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.subplots()
    for i, (table, label) in enumerate(zip(tables, labels)):
        color = f"C{i}"
        depth = table.column("depth")
        prefix = f"{label}: " if label else ""
        ax.plot(depth, table.column("blank_fraction"), "o-", color=color, label=f"{prefix}blank channels")
        ax.plot(depth, table.column("zero_fraction"), "s--", color=color, alpha=0.7, label=f"{prefix}zero activations")
    longest = max(tables, key=len)
    ax.set_xticks(longest.column("depth"), [r.layer for r in longest.rows], rotation=45, ha="right", fontsize=8)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("layer (shallow \u2192 deep)")
    ax.set_ylabel("fraction")
    ax.set_title(f"Activation sparsity across depth ({longest.images} images)", loc="left")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, save)


def filters(patterns, **kwargs) -> Figure:
    """The chapter's grid of filter patterns (8 x 8, 5 px margins): the result of
    :func:`convviz.filters` or a (N, H, W, 3) uint8 array. Keyword arguments as
    ``plot_filters`` in the ``convviz.filters`` module: ``columns``, ``margin``,
    ``width``, ``title``, ``save``."""
    from convviz.filters import plot_filters  # filters.py builds on this module

    return plot_filters(patterns, **kwargs)
