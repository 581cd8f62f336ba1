import warnings

import numpy as np
import pytest
from matplotlib.figure import Figure

import convviz
from convviz.errors import InputError
from convviz.plot import activation_grid, standardize_channels


def test_standardize_matches_the_chapter_formula_channel_by_channel():
    rng = np.random.default_rng(0)
    maps = rng.normal(3.0, 2.0, size=(6, 7, 3))
    out = standardize_channels(maps)
    for c in range(3):
        ch = maps[..., c]
        expected = np.clip((ch - ch.mean()) / ch.std() * 64 + 128, 0, 255).astype(np.uint8)
        np.testing.assert_array_equal(out[..., c], expected)


def test_blank_and_constant_channels_stay_blank_without_warnings():
    maps = np.zeros((5, 5, 3))
    maps[..., 1] = 4.0  # constant: no variation to show
    maps[2, 2, 2] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = standardize_channels(maps)
    assert out[..., 0].max() == 0 and out[..., 1].max() == 0 and out[..., 2].max() > 0


def test_grid_layout_16_per_row_with_gaps():
    maps = np.random.default_rng(1).random((4, 3, 20))
    grid = activation_grid(maps, ncols=16)
    assert grid.shape == (2 * 5 - 1, 16 * 4 - 1)
    # Channel 17 sits in row 1, column 1; gaps and the empty tail are NaN.
    np.testing.assert_array_equal(grid[5:9, 4:7], standardize_channels(maps)[..., 17])
    assert np.isnan(grid[4, :]).all() and np.isnan(grid[5:, 4 * 4 :]).all()


def test_activation_figure_one_panel_per_layer_and_save(tmp_path):
    acts = {
        "conv": np.random.default_rng(0).random((2, 10, 10, 32)),
        "pool": np.random.default_rng(1).random((2, 5, 5, 64)),
        "dense": np.zeros((2, 8)),
    }
    path = tmp_path / "sub" / "acts.png"
    fig = convviz.plot.activations(acts, image_index=1, save=path)
    assert isinstance(fig, Figure)
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["conv  10\u00d710\u00d732", "pool  5\u00d75\u00d764"]
    assert path.stat().st_size > 1000


def test_activation_figure_errors():
    acts = {"conv": np.zeros((1, 4, 4, 2))}
    with pytest.raises(InputError, match="No activations for layer"):
        convviz.plot.activations(acts, layers=["nope"])
    with pytest.raises(InputError, match="image_index"):
        convviz.plot.activations(acts, image_index=3)
    with pytest.raises(InputError, match="No spatial"):
        convviz.plot.activations({"dense": np.zeros((1, 3))})


# -- options: ncols, figsize, save; old names for one release ------------------------------


def _acts():
    rng = np.random.default_rng(3)
    return {"conv": rng.random((2, 10, 10, 20)), "pool": rng.random((2, 5, 5, 12))}


def _shown(fig):
    return [ax.images[0].get_array() for ax in fig.axes if ax.images]


def test_activation_figure_default_size_follows_the_grids():
    fig = convviz.plot.activations(_acts())
    width, height = fig.get_size_inches()
    # 12 inches wide; each panel as high as its grid at that width, plus a title line.
    grids = [activation_grid(a[0], ncols=16) for a in _acts().values()]
    assert width == 12.0
    assert height == pytest.approx(sum(12.0 * g.shape[0] / g.shape[1] + 0.35 for g in grids))
    assert tuple(convviz.plot.activations(_acts(), figsize=(6, 5)).get_size_inches()) == (6, 5)
    narrow = convviz.plot.activations(_acts(), figsize=(6, None)).get_size_inches()
    assert narrow[0] == 6 and narrow[1] == pytest.approx(sum(6.0 * g.shape[0] / g.shape[1] + 0.35 for g in grids))


def test_activation_figure_old_option_names_warn_and_draw_the_same():
    new = convviz.plot.activations(_acts(), ncols=8, figsize=(9, None))
    with pytest.warns(DeprecationWarning) as record:
        old = convviz.plot.activations(_acts(), images_per_row=8, width=9)
    messages = " ".join(str(r.message) for r in record)
    assert "images_per_row" in messages and "width" in messages
    assert all(r.filename == __file__ for r in record)
    assert tuple(old.get_size_inches()) == tuple(new.get_size_inches())
    for a, b in zip(_shown(old), _shown(new)):
        np.testing.assert_array_equal(a, b)
    with pytest.warns(DeprecationWarning, match="layers to activations.. by position"):
        only = convviz.plot.activations(_acts(), ["pool"])
    assert len(only.axes) == 1
    with pytest.raises(InputError, match="figsize="):
        convviz.plot.activations(_acts(), width=9, figsize=(9, 9))
    with pytest.warns(DeprecationWarning, match="images_per_row"):
        grid = activation_grid(_acts()["conv"][0], images_per_row=8)
    with pytest.warns(DeprecationWarning, match="by position"):
        same = activation_grid(_acts()["conv"][0], 8)
    np.testing.assert_array_equal(grid, activation_grid(_acts()["conv"][0], ncols=8))
    np.testing.assert_array_equal(same, grid)


@pytest.mark.parametrize("bad", [(0, 3), (3,), "big", (float("nan"), 2), (True, 2), 5])
def test_bad_figsize_and_ncols_raise_input_error(bad):
    with pytest.raises(InputError, match="figsize"):
        convviz.plot.activations(_acts(), figsize=bad)
    with pytest.raises(InputError, match="ncols"):
        convviz.plot.activations(_acts(), ncols=0)


def _pictures(n=3):
    return np.random.default_rng(4).integers(0, 256, (n, 16, 12, 3), dtype=np.uint8)


def _heat(n=3):
    return np.random.default_rng(5).random((n, 4, 3)).astype("float32")


def test_overlay_takes_one_image_or_a_batch_and_old_names_warn():
    pictures, heat = _pictures(), _heat()
    batch = convviz.plot.overlay(pictures, heat)
    assert batch.shape == (3, 16, 12, 3) and batch.dtype == np.uint8
    for i in range(3):
        np.testing.assert_array_equal(batch[i], convviz.plot.overlay(pictures[i], heat[i]))
    with pytest.warns(DeprecationWarning, match=r"overlay\((image|heatmap)=") as record:
        old = convviz.plot.overlay(image=pictures[0], heatmap=heat[0])
    assert len(record) == 2  # image= and heatmap=
    np.testing.assert_array_equal(old, batch[0])
    with pytest.raises(InputError, match=r"\(N, h, w\) heatmaps"):
        convviz.plot.overlay(pictures, heat[0])
    with pytest.raises(InputError, match="3 images but 2 heatmaps"):
        convviz.plot.overlay(pictures, heat[:2])


def test_gradcam_figure_sizes_and_old_names():
    pictures, heat = _pictures(), _heat()
    default = convviz.plot.gradcam(pictures, heat, ncols=2)
    assert tuple(default.get_size_inches()) == (6.0, 6.0)  # 3-inch panels, 2 x 2
    assert tuple(convviz.plot.gradcam(pictures, heat, figsize=(7, 2)).get_size_inches()) == (7, 2)
    assert tuple(convviz.plot.gradcam(pictures, heat, ncols=2, figsize=(8, None)).get_size_inches()) == (8, 8)
    with pytest.warns(DeprecationWarning) as record:
        old = convviz.plot.gradcam(pictures, heat, columns=2, panel=4.0)
    messages = " ".join(str(r.message) for r in record)
    assert "columns" in messages and "panel" in messages
    assert tuple(old.get_size_inches()) == (8.0, 8.0)  # panel * cols, panel * rows
    new = convviz.plot.gradcam(pictures, heat, ncols=2, figsize=(8.0, 8.0))
    for a, b in zip(_shown(old), _shown(new)):
        np.testing.assert_array_equal(a, b)


class _Table:
    """Anything with .column(), .rows and .images draws: plot.py knows no result class."""

    def __init__(self, blank):
        self.rows = [type("Row", (), {"layer": f"l{i}"})() for i in range(len(blank))]
        self.images = 5
        self._columns = {
            "depth": np.arange(1, len(blank) + 1), "blank_fraction": np.asarray(blank),
            "zero_fraction": np.asarray(blank) / 2,
        }

    def column(self, name):
        return self._columns[name]


def test_sparsity_figure_duck_typed_sizes_and_old_names(tmp_path):
    one, two = _Table([0.1, 0.4, 0.8]), _Table([0.0, 0.2])
    fig = convviz.plot.sparsity(one)
    assert tuple(fig.get_size_inches()) == (8.0, 4.5) and len(fig.axes[0].lines) == 2
    fig = convviz.plot.sparsity([one, two], labels=["a", "b"], figsize=(6, 3), save=tmp_path / "s.png")
    assert tuple(fig.get_size_inches()) == (6, 3) and (tmp_path / "s.png").exists()
    with pytest.warns(DeprecationWarning) as record:
        old = convviz.plot.sparsity([one, two], ["a", "b"], width=6, height=3)
    messages = " ".join(str(r.message) for r in record)
    assert "labels" in messages and "width=, height=" in messages
    assert tuple(old.get_size_inches()) == (6, 3)
    assert [line.get_label() for line in old.axes[0].lines] == [line.get_label() for line in fig.axes[0].lines]
    with pytest.warns(DeprecationWarning):
        assert tuple(convviz.plot.sparsity(one, width=5).get_size_inches()) == (5, 4.5)


def test_filters_figure_duck_typed_sizes_and_old_names():
    from types import SimpleNamespace

    from convviz.plot import filter_grid

    images = np.random.default_rng(6).integers(0, 256, (6, 10, 10, 3), dtype=np.uint8)
    patterns = SimpleNamespace(images=images, layer="conv", filter_indices=np.arange(2, 8))
    fig = convviz.plot.filters(patterns, ncols=3)
    grid = filter_grid(images, ncols=3)
    assert fig.axes[0].get_title(loc="left") == "conv: filters 2-7"
    np.testing.assert_array_equal(_shown(fig)[0], grid)
    width, height = fig.get_size_inches()
    assert width == 8.0 and height == pytest.approx(8.0 * grid.shape[0] / grid.shape[1] + 0.35)
    with pytest.warns(DeprecationWarning) as record:
        old = convviz.plot.filters(patterns, columns=3, width=5)
    assert {"columns", "width"} <= {w for r in record for w in ("columns", "width") if w in str(r.message)}
    new = convviz.plot.filters(patterns, ncols=3, figsize=(5, None))
    assert tuple(old.get_size_inches()) == tuple(new.get_size_inches())
    np.testing.assert_array_equal(_shown(old)[0], _shown(new)[0])
    with pytest.warns(DeprecationWarning, match="columns"):
        np.testing.assert_array_equal(filter_grid(images, columns=3), grid)
    with pytest.warns(DeprecationWarning, match="by position"):
        np.testing.assert_array_equal(filter_grid(images, 3, 0), filter_grid(images, ncols=3, margin=0))


def test_cam_methods_figure_one_row_per_image_one_column_per_method(tmp_path):
    from types import SimpleNamespace

    pictures = _pictures(2)
    rng = np.random.default_rng(7)
    grad, eigen = rng.random((2, 4, 3)), rng.random((2, 8, 6))  # sizes may differ
    # An Explanation (anything with .maps) draws as its maps do.
    maps = {"Grad-CAM": grad, "Layer-CAM": SimpleNamespace(maps=grad[::-1]), "Eigen-CAM": eigen}
    fig = convviz.plot.cam_methods(pictures, maps, row_titles=["cat", "cup"], save=tmp_path / "f" / "cams.png")
    assert isinstance(fig, Figure) and (tmp_path / "f" / "cams.png").stat().st_size > 0
    assert len(fig.axes) == 2 * 3
    assert [ax.get_title() for ax in fig.axes] == ["Grad-CAM", "Layer-CAM", "Eigen-CAM", "", "", ""]
    assert [ax.get_ylabel() for ax in fig.axes] == ["cat", "", "", "cup", "", ""]
    # Row i, column j is the overlay of image i with method j's map i.
    columns = [grad, grad[::-1], eigen]
    for k, shown in enumerate(_shown(fig)):
        i, j = divmod(k, 3)
        np.testing.assert_array_equal(shown, convviz.plot.overlay(pictures[i], columns[j][i]))
    assert tuple(fig.get_size_inches()) == (9.0, 6.0)  # 3-inch panels
    assert tuple(convviz.plot.cam_methods(pictures, maps, figsize=(6, None)).get_size_inches()) == (6, 4)
    renamed = convviz.plot.cam_methods(pictures, maps, titles=["a", "b", "c"], figsize=(5, 2))
    assert [ax.get_title() for ax in renamed.axes[:3]] == ["a", "b", "c"]
    assert tuple(renamed.get_size_inches()) == (5, 2)
    # One image with (h, w) maps.
    assert len(convviz.plot.cam_methods(pictures[0], {"Grad-CAM": grad[0]}).axes) == 1


def test_cam_methods_figure_errors():
    pictures, heat = _pictures(2), _heat(2)
    with pytest.raises(InputError, match="non-empty mapping"):
        convviz.plot.cam_methods(pictures, {})
    with pytest.raises(InputError, match="non-empty mapping"):
        convviz.plot.cam_methods(pictures, heat)
    with pytest.raises(InputError, match="2 images but the maps of 'b' have shape"):
        convviz.plot.cam_methods(pictures, {"a": heat, "b": heat[:1]})
    with pytest.raises(InputError, match="1 columns of maps but 2 titles"):
        convviz.plot.cam_methods(pictures, {"a": heat}, titles=["a", "b"])
    with pytest.raises(InputError, match="2 images but 1 row_titles"):
        convviz.plot.cam_methods(pictures, {"a": heat}, row_titles=["x"])
    with pytest.raises(InputError, match="figsize"):
        convviz.plot.cam_methods(pictures, {"a": heat}, figsize=(0, 1))
    assert "cam_methods" in convviz.plot.__all__


# -- pixel attributions ----------------------------------------------------------------------


def _attributions(n=2, size=(12, 10), seed=8):
    return np.random.default_rng(seed).normal(size=(n, *size, 3))


def _panels(fig):
    """The picture axes (colour bars hold no image), in drawing order."""
    return [ax for ax in fig.axes if ax.images]


def test_aggregate_channels_exact_values():
    maps = np.zeros((2, 1, 2, 3))
    maps[0, 0, 0] = [1.0, -3.0, 0.5]
    maps[0, 0, 1] = [-2.0, 2.0, 0.0]
    maps[1, 0, 0] = [0.25, 0.25, -4.0]
    aggregate = convviz.plot.aggregate_channels
    np.testing.assert_array_equal(aggregate(maps, "sum"), [[[-1.5, 0.0]], [[-3.5, 0.0]]])
    np.testing.assert_array_equal(aggregate(maps, "abs_sum"), [[[4.5, 4.0]], [[4.5, 0.0]]])
    np.testing.assert_array_equal(aggregate(maps, "max_abs"), [[[3.0, 2.0]], [[4.0, 0.0]]])
    assert aggregate(maps).dtype == np.float32 and aggregate(maps).shape == (2, 1, 2)
    # Summed in float64: float32 maps whose sum cancels keep their small remainder.
    tiny = np.array([1e8, 1.0, -1e8], np.float32).reshape(1, 1, 1, 3)
    assert aggregate(tiny, "sum")[0, 0, 0] == 1.0
    # (N, H, W) maps are one value per pixel already.
    flat = np.random.default_rng(0).normal(size=(2, 3, 4))
    for how in ("sum", "abs_sum", "max_abs"):
        np.testing.assert_array_equal(aggregate(flat, how), flat.astype(np.float32))
    with pytest.raises(InputError, match="aggregate must be one of 'sum', 'abs_sum', 'max_abs'; got 'mean'"):
        aggregate(maps, "mean")
    with pytest.raises(InputError, match=r"\(N, H, W, C\) or \(N, H, W\)"):
        aggregate(np.zeros((3, 4)))


def test_signed_view_symmetric_limits_at_each_maps_percentile():
    pictures, maps = _pictures(2)[:, :12, :10], _attributions()
    maps[1] *= 100.0  # another scale: each image gets its own limits
    fig = convviz.plot.attributions(pictures, maps, titles=["a", "b"], percentile=90)
    heat = maps.sum(axis=-1)
    panels = _panels(fig)
    assert [ax.get_title() for ax in panels] == ["a", "b"]
    assert len(fig.axes) == 4  # each panel has its colour bar
    for ax, h in zip(panels, heat):
        limit = np.percentile(np.abs(h), 90)
        lo, hi = ax.images[0].get_clim()
        assert lo == pytest.approx(-limit) and hi == pytest.approx(limit)
        assert ax.images[0].get_cmap().name == "RdBu_r"
        # Values beyond the limit are clipped to it, the others drawn as they are.
        np.testing.assert_allclose(ax.images[0].get_array(), np.clip(h, -limit, limit), rtol=1e-6)
        assert (np.abs(h) > limit).mean() == pytest.approx(0.1, abs=0.01)


def test_percentile_clips_outliers_and_100_keeps_everything():
    maps = np.ones((1, 20, 20, 1))
    maps[0, 0, 0, 0] = -1000.0  # one extreme gradient among 400 pixels
    pictures = _pictures(1)
    clipped = _panels(convviz.plot.attributions(pictures, maps))[0].images[0]
    assert clipped.get_clim() == pytest.approx((-1.0, 1.0))
    assert clipped.get_array().min() == -1.0
    full = _panels(convviz.plot.attributions(pictures, maps, percentile=100))[0].images[0]
    assert full.get_clim() == pytest.approx((-1000.0, 1000.0))
    assert full.get_array().min() == -1000.0
    # A mostly empty map is clipped at its maximum, an empty one draws without error.
    sparse = np.zeros((2, 20, 20, 1))
    sparse[0, 3, 3, 0] = 5.0  # its 99th percentile is 0
    limits = [ax.images[0].get_clim() for ax in _panels(convviz.plot.attributions(_pictures(2), sparse))]
    assert limits == [pytest.approx((-5.0, 5.0)), pytest.approx((-1.0, 1.0))]


def test_absolute_and_overlay_views_draw_the_clipped_magnitude():
    pictures, maps = _pictures(2)[:, :12, :10], _attributions()
    heat = np.abs(maps).max(axis=-1)
    limits = np.percentile(heat.reshape(2, -1), 95, axis=1)
    absolute = convviz.plot.attributions(pictures, maps, view="absolute", aggregate="max_abs", percentile=95)
    for ax, h, limit in zip(_panels(absolute), heat, limits):
        assert ax.images[0].get_clim() == pytest.approx((0.0, limit))
        assert ax.images[0].get_cmap().name == "inferno"
        np.testing.assert_allclose(ax.images[0].get_array(), np.minimum(h, limit), rtol=1e-6)
    overlay = convviz.plot.attributions(pictures, maps, view="overlay", aggregate="max_abs", percentile=95, alpha=0.3)
    assert len(overlay.axes) == 2  # no colour bars over the photo
    for ax, picture, h, limit in zip(overlay.axes, pictures, heat, limits):
        expected = convviz.plot.overlay(picture, np.minimum(h / limit, 1.0), alpha=0.3)
        np.testing.assert_array_equal(ax.images[0].get_array(), expected)


def test_all_view_a_row_per_image_image_signed_absolute_overlay(tmp_path):
    pictures, maps = _pictures(2)[:, :12, :10], _attributions()
    path = tmp_path / "f" / "attributions.png"
    fig = convviz.plot.attributions(pictures, maps, view="all", titles=["cat", "cup"], save=path)
    assert path.stat().st_size > 0
    panels = _panels(fig)
    assert len(panels) == 8 and len(fig.axes) == 8 + 4  # colour bars for signed and absolute
    assert [ax.get_title() for ax in panels] == ["image", "signed", "absolute", "overlay", "", "", "", ""]
    assert [ax.get_ylabel() for ax in panels[::4]] == ["cat", "cup"]
    heat = maps.sum(axis=-1)
    for i in range(2):
        image, signed, absolute, over = panels[4 * i : 4 * i + 4]
        np.testing.assert_array_equal(image.images[0].get_array(), pictures[i])
        limit = np.percentile(np.abs(heat[i]), 99)
        assert signed.images[0].get_clim() == pytest.approx((-limit, limit))
        assert absolute.images[0].get_clim() == pytest.approx((0.0, limit))
        np.testing.assert_array_equal(
            over.images[0].get_array(), convviz.plot.overlay(pictures[i], np.minimum(np.abs(heat[i]) / limit, 1), alpha=0.5)
        )
    assert tuple(fig.get_size_inches()) == (14.0, 7.0)  # 3.5-inch panels, room for colour bars
    assert tuple(convviz.plot.attributions(pictures, maps, view="all", figsize=(8, None)).get_size_inches()) == (8, 4)


def test_attribution_layout_colormaps_and_flat_maps():
    pictures, maps = _pictures(3)[:, :12, :10], _attributions(3)
    fig = convviz.plot.attributions(pictures, maps.sum(axis=-1), ncols=2, cmap="bwr")
    assert tuple(fig.get_size_inches()) == (7.0, 7.0) and len(_panels(fig)) == 3
    assert {ax.images[0].get_cmap().name for ax in _panels(fig)} == {"bwr"}
    fig = convviz.plot.attributions(pictures, maps, view="all", cmap={"absolute": "gray"})
    assert [ax.images[0].get_cmap().name for ax in _panels(fig)[1:3]] == ["RdBu_r", "gray"]
    # Pictures outside 0-255 (a model's preprocessed inputs) are shown rescaled to it.
    shown = _panels(convviz.plot.attributions(pictures / 127.5 - 1.0, maps, view="all"))[0].images[0].get_array()
    assert shown.dtype == np.uint8 and (shown.min(), shown.max()) == (0, 255)


def test_attribution_figure_errors():
    pictures, maps = _pictures(2)[:, :12, :10], _attributions()
    plot = convviz.plot.attributions
    with pytest.raises(InputError, match="view must be 'signed', 'absolute', 'overlay' or 'all'; got 'heat'"):
        plot(pictures, maps, view="heat")
    with pytest.raises(InputError, match="aggregate must be one of"):
        plot(pictures, maps, aggregate="l2")
    for bad in (0, 101, -5, "99", True, float("nan")):
        with pytest.raises(InputError, match=r"percentile must be a number in \(0, 100\]"):
            plot(pictures, maps, percentile=bad)
    with pytest.raises(InputError, match="2 images but 1 attribution maps"):
        plot(pictures, maps[:1])
    with pytest.raises(InputError, match="2 images but 3 titles"):
        plot(pictures, maps, titles=list("abc"))
    with pytest.raises(InputError, match=r"cmap names views \['overlay'\]"):
        plot(pictures, maps, view="signed", cmap={"overlay": "jet"})
    with pytest.raises(InputError, match="figsize"):
        plot(pictures, maps, figsize=(0, 1))
    with pytest.raises(InputError, match="ncols"):
        plot(pictures, maps, ncols=0)
    with pytest.raises(TypeError):
        plot(pictures, maps, "all")  # keyword-only
    assert {"attributions", "aggregate_channels"} <= set(convviz.plot.__all__)
