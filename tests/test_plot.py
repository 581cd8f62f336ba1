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
    grid = activation_grid(maps, images_per_row=16)
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
