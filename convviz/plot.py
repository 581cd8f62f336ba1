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
