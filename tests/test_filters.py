"""Filter visualization (gradient ascent) against independent computations.

One shared run (8 filters of the chapter's small convnet, 30 steps, 64 x 64) feeds
most checks; other tests reuse its compiled step where they can, so each backend
compiles only a few step variants.
"""

import keras
import numpy as np
import pytest
from helpers import reference_output, vgg16_base, vgg16_in_sequential
from matplotlib.figure import Figure

from convviz import models
from convviz._autodiff import ascent_step
from convviz.errors import InputError, LayerNotFoundError, ModelStructureError
from convviz.filter_patterns import (
    FilterPatterns,
    chunk_size,
    deprocess,
    filter_grid,
    filters,
    normalize_gradient,
    start_images,
)
from convviz.plot import filters as plot_filters

MODEL_SIZE = 80  # the small convnet's minimum is 78; its input size is fixed
SIZE = (64, 64)  # differs from MODEL_SIZE: exercises the head rebuilt at `size`
LAYER = "conv2d_2"


def _head_reference(model, layer, size):
    """Independent head at ``size``: the model's own layers up to ``layer`` in a Sequential."""
    names = [lay.name for lay in model.layers]
    return keras.Sequential([keras.Input((*size, 3))] + model.layers[1 : names.index(layer) + 1])


def _chapter_losses(activation, indices):
    return np.array([activation[i, 2:-2, 2:-2, f].mean() for i, f in enumerate(indices)])


@pytest.fixture(scope="module")
def run():
    """The shared run, on 8 filters that respond to their grey start image.

    With random weights many relu filters are silent on grey noise; their gradient is
    zero and gradient ascent (the book's as well) leaves them as they are.
    """
    keras.utils.set_random_seed(0)
    model = models.small_convnet(input_shape=(MODEL_SIZE, MODEL_SIZE, 3), compile=False)
    reference = _head_reference(model, LAYER, SIZE)

    def act(x):
        return keras.ops.convert_to_numpy(reference(keras.ops.convert_to_tensor(x), training=False))

    candidates = list(range(64))
    responses = _chapter_losses(act(start_images(0, candidates, (*SIZE, 3))), candidates)
    picked = [f for f, r in zip(candidates, responses) if r > 1e-4][:8]
    assert len(picked) == 8, responses
    result = filters(model, LAYER, filters=picked, size=SIZE, verbose=False)
    return model, result, act, act(start_images(0, picked, (*SIZE, 3)))


def test_result_shapes_and_types(run):
    _, result, _, _ = run
    assert isinstance(result, FilterPatterns) and len(result) == 8
    assert result.images.shape == (8, SIZE[0] - 50, SIZE[1] - 50, 3)
    assert result.images.dtype == np.uint8
    assert result.raw.shape == (8, *SIZE, 3) and result.raw.dtype == np.float32
    assert result.layer == LAYER and result.seed == 0
    np.testing.assert_array_equal(result.images, deprocess(result.raw, crop=25))


def test_ascent_raises_the_chapter_loss_at_least_fivefold(run):
    _, result, act, start = run
    before = _chapter_losses(start, result.filter_indices)
    after = _chapter_losses(act(result.raw), result.filter_indices)
    assert np.all(after >= 5 * before), (before, after)


def test_each_pattern_excites_its_own_filter_more_than_the_others(run):
    _, result, act, _ = run
    means = act(result.raw)[:, 2:-2, 2:-2, :].mean(axis=(1, 2))  # (pattern, filter)
    own = means[np.arange(8), result.filter_indices]
    others = (means.sum(axis=1) - own) / (means.shape[1] - 1)
    assert np.mean(own > others) >= 0.75, (own, others)


def test_reported_loss_matches_an_independent_forward_pass(run):
    _, result, act, _ = run
    expected = _chapter_losses(act(result.raw), result.filter_indices)
    np.testing.assert_allclose(result.losses, expected, rtol=1e-4, atol=1e-5)


def test_loss_at_model_size_matches_keras_model_to_layer_output(run):
    model, shared, _, _ = run
    picked = shared.filter_indices[:2]
    result = filters(model, LAYER, filters=picked, steps=2, size=MODEL_SIZE, verbose=False)
    layer_output = reference_output(model.inputs, model.get_layer(LAYER).output, result.raw)
    expected = _chapter_losses(layer_output, picked)
    np.testing.assert_allclose(result.losses, expected, rtol=1e-4, atol=1e-5)


def test_batched_equals_one_at_a_time(run):
    model, result, _, _ = run
    rows = [1, 6]
    picked = result.filter_indices[rows]
    # A budget too small for two images forces chunks of one filter each.
    single = filters(model, LAYER, filters=picked, size=SIZE, memory_budget=1, verbose=False)
    # Kernels may round differently per batch size, and a relu kink can amplify that
    # at a few pixels over 30 steps, so compare whole images, relative to the distance
    # each image travelled.
    travelled = result.raw[rows] - start_images(0, picked, (*SIZE, 3))
    diff = single.raw - result.raw[rows]
    for i in range(len(rows)):
        assert np.linalg.norm(diff[i]) <= 0.02 * np.linalg.norm(travelled[i])
    assert np.abs(single.images.astype(int) - result.images[rows]).mean() < 1.0
    np.testing.assert_allclose(single.losses, result.losses[rows], rtol=1e-2, atol=1e-5)


def test_same_seed_same_images_other_seed_different(run):
    model, result, _, _ = run
    picked = result.filter_indices[:2]
    kwargs = dict(steps=3, size=SIZE, memory_budget=1, verbose=False)
    first = filters(model, LAYER, filters=picked, **kwargs)
    again = filters(model, LAYER, filters=picked, **kwargs)
    np.testing.assert_array_equal(again.images, first.images)
    np.testing.assert_array_equal(again.raw, first.raw)
    other = filters(model, LAYER, filters=picked, seed=1, **kwargs)
    assert not np.array_equal(other.images, first.images)
    drawn = filters(model, LAYER, filters=picked, seed=None, **kwargs)
    replay = filters(model, LAYER, filters=picked, seed=drawn.seed, **kwargs)
    np.testing.assert_array_equal(replay.raw, drawn.raw)


def test_start_images_depend_only_on_seed_and_filter():
    a = start_images(3, [0, 4, 9], (8, 8, 3), pixel_range=(-1.0, 1.0))
    b = start_images(3, [9, 0], (8, 8, 3), pixel_range=(-1.0, 1.0))
    np.testing.assert_array_equal(a[[2, 0]], b)
    assert a.min() >= -0.2 and a.max() <= 0.2  # [0.4, 0.6] of the range (-1, 1)
    assert not np.array_equal(a, start_images(4, [0, 4, 9], (8, 8, 3), pixel_range=(-1.0, 1.0)))
    # (seed, filter 0) must not collide with another seed's stream.
    assert not np.array_equal(start_images(3, [0], (8, 8, 3)), start_images(0, [3], (8, 8, 3)))


def test_gradient_normalisation_is_per_image_global_l2():
    rng = np.random.default_rng(0)
    scales = np.array([1e-3, 1.0, 50.0], "float32")[:, None, None, None]
    g = rng.normal(size=(3, 5, 4, 3)).astype("float32") * scales
    g[2] = 0.0
    out = keras.ops.convert_to_numpy(normalize_gradient(keras.ops.convert_to_tensor(g)))
    norms = np.sqrt((out.astype(np.float64) ** 2).sum(axis=(1, 2, 3)))
    np.testing.assert_allclose(norms[:2], 1.0, rtol=1e-5)
    for i in range(2):  # same direction, one scale per image (not per pixel or channel)
        np.testing.assert_allclose(out[i], g[i] / np.linalg.norm(g[i]), rtol=1e-4, atol=1e-7)
    np.testing.assert_array_equal(out[2], 0.0)  # a silent filter stays put, no NaN


def test_each_step_moves_each_image_by_learning_rate_times_range(run):
    model, shared, _, _ = run
    picked = shared.filter_indices
    result = filters(model, LAYER, filters=picked, steps=1, learning_rate=2.0, size=SIZE, verbose=False)
    moved = result.raw - start_images(0, picked, (*SIZE, 3))
    norms = np.sqrt((moved.astype(np.float64) ** 2).sum(axis=(1, 2, 3)))
    # Per image, not per batch (norms would share 2 * 255) or per pixel (far larger).
    np.testing.assert_allclose(norms, 2.0 * 255, rtol=1e-3)


def test_ascent_step_differentiates_through_transform_and_applies_update():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, use_bias=False)])
    w = keras.ops.convert_to_numpy(model.layers[0].kernel)[:, 0]
    step = ascent_step(
        model,
        lambda y, x, rate: (keras.ops.sum(y), y[:, 0]),
        lambda x, grad, rate: x + rate * grad,
        transform=lambda x, rate: 2.0 * x,
    )
    x = np.ones((2, 3), "float32")
    new_x, value, aux = step(x, np.float32(0.5))
    # d/dx sum(model(2x)) = 2w per image; the update adds half of it.
    np.testing.assert_allclose(keras.ops.convert_to_numpy(new_x), x + w, rtol=1e-6)
    assert float(value) == pytest.approx(4 * w.sum(), rel=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(aux), [2 * w.sum()] * 2, rtol=1e-5)


def test_regularisers_smooth_the_pattern(run):
    model, result, _, _ = run
    picked = result.filter_indices[:2]
    smooth = filters(model, LAYER, filters=picked, size=SIZE, jitter=2, blur=1.0, tv=0.05, verbose=False)
    assert np.all(np.isfinite(smooth.raw)) and np.all(smooth.losses > 0)

    def tv(x):
        return np.abs(np.diff(x, axis=1)).mean() + np.abs(np.diff(x, axis=2)).mean()

    assert tv(smooth.raw) < 0.5 * tv(result.raw[:2])


def test_layer_inside_nested_vgg16_base():
    base = vgg16_base(64)
    model = vgg16_in_sequential(base, 64)  # augmentation in front must stay inactive
    result = filters(model, "block2_conv1", filters=[0, 3, 7], steps=5, size=64, crop=8, verbose=False)
    assert result.images.shape == (3, 48, 48, 3) and result.layer == "block2_conv1"
    # Independent path: the base's own graph, fed the model's Rescaling(1/255) by hand.
    ref = reference_output(base.inputs, base.get_layer("block2_conv1").output, result.raw / 255)
    np.testing.assert_allclose(result.losses, _chapter_losses(ref, [0, 3, 7]), rtol=1e-4, atol=1e-5)
    start_x = start_images(0, [0, 3, 7], (64, 64, 3)) / 255
    start = reference_output(base.inputs, base.get_layer("block2_conv1").output, start_x)
    before = _chapter_losses(start, [0, 3, 7])
    assert np.all(result.losses[before > 0] > 2 * before[before > 0])


def test_bad_requests_raise_clear_errors(run):
    model, _, _, _ = run
    with pytest.raises(InputError, match="out of range.*128 filters"):
        filters(model, LAYER, filters=128, size=SIZE, verbose=False)
    with pytest.raises(InputError, match="out of range"):
        filters(model, LAYER, filters=[0, -1], size=SIZE, verbose=False)
    with pytest.raises(InputError, match="selects no filter"):
        filters(model, LAYER, filters=slice(200, 300), size=SIZE, verbose=False)
    with pytest.raises(ModelStructureError, match="feature map"):
        filters(model, "flatten", verbose=False)
    with pytest.raises(ModelStructureError, match="feature map"):
        filters(model, "dense", verbose=False)
    for steps in (0, -3, 2.5):
        with pytest.raises(InputError, match="steps"):
            filters(model, LAYER, filters=0, steps=steps, size=SIZE, verbose=False)
    with pytest.raises(LayerNotFoundError, match="conv2d_2"):
        filters(model, "conv2d_22", verbose=False)
    with pytest.raises(InputError, match="pixel_range"):
        filters(model, LAYER, filters=0, pixel_range=(1, 0), size=SIZE, verbose=False)
    with pytest.raises(InputError, match="crop"):
        filters(model, LAYER, filters=0, size=SIZE, crop=32, verbose=False)
    with pytest.raises(InputError, match="larger size"):
        filters(model, "conv2d_4", filters=0, size=SIZE, verbose=False)
    with pytest.raises(InputError, match="seed"):
        filters(model, LAYER, filters=0, size=SIZE, seed=-1, verbose=False)


def test_filter_selection_forms():
    from convviz.filter_patterns import _filter_indices

    assert _filter_indices(None, 4, "conv").tolist() == [0, 1, 2, 3]
    assert _filter_indices(2, 4, "conv").tolist() == [2]
    assert _filter_indices(np.int64(3), 4, "conv").tolist() == [3]
    assert _filter_indices(slice(1, None, 2), 4, "conv").tolist() == [1, 3]
    assert _filter_indices(range(2), 4, "conv").tolist() == [0, 1]
    assert _filter_indices([3, 0], 4, "conv").tolist() == [3, 0]
    assert _filter_indices(np.array([1, 2]), 4, "conv").tolist() == [1, 2]
    for bad in (True, "0", [0.5], 4.0):
        with pytest.raises(InputError):
            _filter_indices(bad, 4, "conv")


def test_chunk_size_rule():
    assert chunk_size(1_000_000, 64, memory_budget=96_000_000) == 11  # room for 12: 6 even chunks
    assert chunk_size(1_000_000, 64, memory_budget=1) == 1
    assert chunk_size(10, 64, memory_budget=1 << 30) == 64


def test_deprocess_is_the_chapter_formula():
    raw = np.random.default_rng(2).normal(3.0, 2.0, size=(2, 60, 60, 3))
    out = deprocess(raw, crop=25)
    x = raw[1]
    expected = np.clip((x - x.mean()) / x.std() * 64 + 128, 0, 255).astype("uint8")[25:-25, 25:-25]
    np.testing.assert_array_equal(out[1], expected)
    assert deprocess(np.full((1, 8, 8, 3), 7.0), crop=0).max() == 128  # flat: grey, no NaN


def test_grid_and_figure(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (64, 10, 10, 3), dtype=np.uint8)
    grid = filter_grid(images)
    assert grid.shape == (8 * 10 + 7 * 5, 8 * 10 + 7 * 5, 3)
    np.testing.assert_array_equal(grid[15:25, 30:40], images[1 * 8 + 2])
    assert grid[10:15].max() == 0  # black margins, as in the chapter
    assert filter_grid(images[:10], ncols=4).shape == (3 * 10 + 2 * 5, 4 * 10 + 3 * 5, 3)
    path = tmp_path / "out" / "filters.png"
    fig = plot_filters(images[:5], save=path)
    assert isinstance(fig, Figure) and path.stat().st_size > 0
    raw = np.zeros((3, 10, 10, 3))
    patterns = FilterPatterns(images[:3], np.zeros(3), "conv", np.array([4, 5, 6]), raw, 0)
    fig = plot_filters(patterns)
    assert fig.axes[0].get_title(loc="left") == "conv: filters 4-6"
    with pytest.raises(InputError):
        filter_grid(np.zeros((10, 10, 3)))


def test_old_positional_options_warn_and_give_the_same_result(run):
    model, shared, _, _ = run
    picked = list(shared.filter_indices[:2])
    kwargs = dict(steps=1, size=SIZE, verbose=False)
    with pytest.warns(DeprecationWarning, match="filters to filters.. by position"):
        old = filters(model, LAYER, picked, **kwargs)
    np.testing.assert_array_equal(old.raw, filters(model, LAYER, filters=picked, **kwargs).raw)
    with pytest.warns(DeprecationWarning, match="pixel_range"):
        a = start_images(3, [0, 4], (8, 8, 3), (-1.0, 1.0))
    np.testing.assert_array_equal(a, start_images(3, [0, 4], (8, 8, 3), pixel_range=(-1.0, 1.0)))
    raw = np.random.default_rng(1).random((2, 20, 20, 3))
    with pytest.warns(DeprecationWarning, match="crop"):
        np.testing.assert_array_equal(deprocess(raw, 5), deprocess(raw, crop=5))
    with pytest.warns(DeprecationWarning, match="memory_budget"):
        assert chunk_size(1_000_000, 64, 96_000_000) == chunk_size(1_000_000, 64, memory_budget=96_000_000)


def test_batch_size_none_is_the_memory_budget_rule_and_explicit_sizes_agree(run):
    model, shared, _, _ = run
    picked = shared.filter_indices[:3]
    kwargs = dict(filters=picked, steps=2, size=SIZE, verbose=False)
    automatic = filters(model, LAYER, **kwargs)
    chunked = filters(model, LAYER, batch_size=2, **kwargs)
    np.testing.assert_allclose(chunked.raw, automatic.raw, rtol=1e-3, atol=1e-2)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InputError, match="batch_size"):
            filters(model, LAYER, batch_size=bad, **kwargs)


def test_progress_goes_to_stderr(run, capsys):
    model, shared, _, _ = run
    filters(model, LAYER, filters=shared.filter_indices[:2], steps=1, size=SIZE, batch_size=1)
    out = capsys.readouterr()
    assert out.out == "" and "2/2" in out.err
    filters(model, LAYER, filters=shared.filter_indices[:2], steps=1, size=SIZE, verbose=False)
    assert capsys.readouterr() == ("", "")


def test_patterns_plot_is_plot_filters_with_options(run, tmp_path):
    _, result, _, _ = run
    fig = result.plot(ncols=4, margin=2, figsize=(6, None), save=tmp_path / "p.png")
    same = plot_filters(result, ncols=4, margin=2, figsize=(6, None))
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), same.axes[0].images[0].get_array())
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), filter_grid(result, ncols=4, margin=2))
    assert tuple(fig.get_size_inches()) == tuple(same.get_size_inches()) and fig.get_size_inches()[0] == 6
    assert fig.axes[0].get_title(loc="left") == same.axes[0].get_title(loc="left")
    assert fig.axes[0].get_title(loc="left").startswith(f"{LAYER}: filters {result.filter_indices[0]}")
    assert (tmp_path / "p.png").exists()
