"""Integrated Gradients (Sundararajan et al. 2017): gradients along a straight path."""

from __future__ import annotations

import numbers

import numpy as np

from convviz._validation import check_positive_number
from convviz.errors import InputError
from convviz.methods.attribution import Attribution, baseline_images
from convviz.methods.cam import LazyBatch

__all__ = ["IntegratedGradients", "path_rule"]

RULES = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle")


def path_rule(rule: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """``(alphas, weights)``: where along the path from the baseline (0) to the image
    (1) the gradients are taken, and how they are weighted (the weights sum to 1).

    ``"gausslegendre"`` is captum's default (exact for polynomials of degree
    ``2 * steps - 1``); ``"riemann_trapezoid"`` uses ``linspace(0, 1, steps)`` with the
    trapezoid's weights (captum's weights are these times ``(steps - 1) / steps``);
    ``"riemann_left"``, ``"riemann_right"``, ``"riemann_middle"`` weight each of
    ``steps`` intervals ``1 / steps`` at its left end, right end or middle.

    >>> a, w = path_rule("riemann_trapezoid", 3)
    >>> a.tolist(), w.tolist()
    ([0.0, 0.5, 1.0], [0.25, 0.5, 0.25])
    """
    if rule == "gausslegendre":
        points, weights = np.polynomial.legendre.leggauss(steps)
        return 0.5 * (points + 1), 0.5 * weights
    if rule == "riemann_trapezoid":
        if steps < 2:
            raise InputError("The trapezoid rule needs steps >= 2.")
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[[0, -1]] /= 2
        return np.linspace(0.0, 1.0, steps), weights
    offset = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}.get(rule)
    if offset is None:
        raise InputError(f"rule must be one of {', '.join(RULES)}; got {rule!r}.")
    return (np.arange(steps) + offset) / steps, np.full(steps, 1.0 / steps)


class IntegratedGradients(Attribution):
    """Integrated Gradients: ``(x - b) * integral_0^1 d score / d x (b + a (x - b)) da``,
    the integral taken by ``rule`` with ``steps`` points.

    The attributions of an image sum to ``score(x) - score(b)`` when the integral is
    exact (completeness); each result reports, per image, ``details["completeness_gap"]``
    (sum of the attributions minus that difference), ``details["relative_gap"]`` (the
    gap over ``|score(x) - score(b)|``), ``details["score_difference"]`` and
    ``details["steps"]``. On deep ReLU networks 50 steps can leave a gap of tens of
    percent: ``steps="auto"`` doubles the steps of each image (from 50) until its
    relative gap is below ``tolerance`` or the steps reach ``max_steps``.

    ``baseline``: a number, ``"black"`` (0), ``"blur"`` (a blurred copy) or an array,
    in the model's input space (see :func:`~convviz.methods.attribution.baseline_images`).
    The N x ``steps`` interpolated images are built one chunk of ``batch_size`` at a
    time (a second one is built while the first runs) and only each image's running
    sum of gradients is kept: memory does not grow with ``steps``.

    Examples
    --------
    >>> import keras, numpy as np, convviz
    >>> model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    >>> result = convviz.attribute(model, np.random.rand(2, 16, 16, 3), steps=16)
    >>> result.maps.shape, sorted(result.details)
    ((2, 16, 16, 3), ['completeness_gap', 'relative_gap', 'score_difference', 'steps'])
    """

    name = "integrated_gradients"
    title = "Integrated Gradients"
    reference = "Sundararajan et al., Axiomatic Attribution for Deep Networks, ICML 2017"
    order = 23

    def __init__(self, model, *, steps=50, rule: str = "gausslegendre", baseline=0.0, tolerance: float = 0.01,
                 max_steps: int = 1600, **kwargs):
        super().__init__(model, **kwargs)
        if isinstance(max_steps, bool) or not isinstance(max_steps, numbers.Integral) or max_steps < 2:
            raise InputError(f"max_steps must be an integer >= 2, got {max_steps!r}.")
        if steps != "auto" and (isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1):
            raise InputError(f'steps must be a positive integer or "auto", got {steps!r}.')
        tolerance = check_positive_number(tolerance, "tolerance")
        path_rule(rule, 2)  # validates the rule's name
        if isinstance(baseline, str) and baseline not in ("black", "blur"):
            raise InputError(f'baseline must be a number, an array, "black" or "blur"; got {baseline!r}.')
        self.steps, self.rule, self.baseline = steps, rule, baseline
        self.tolerance, self.max_steps = float(tolerance), int(max_steps)

    def options(self) -> dict:
        baseline = self.baseline if isinstance(self.baseline, (str, numbers.Real)) else "array"
        return {**super().options(), "steps": self.steps, "rule": self.rule, "baseline": baseline,
                "tolerance": self.tolerance, "max_steps": self.max_steps}

    def integrate(self, images, baselines, classes, steps: int) -> np.ndarray:
        """(N, H, W, C) attributions with ``steps`` points of the rule."""
        alphas, weights = path_rule(self.rule, steps)
        n = len(images)
        delta = images - baselines

        def build(start, stop):
            index = np.arange(start, stop)
            a = alphas[index % steps].astype(np.float32)[:, None, None, None]
            return baselines[index // steps] + a * delta[index // steps]

        path = LazyBatch(n * steps, build)
        sums = self.gradient_sums(path, np.repeat(classes, steps), np.tile(weights, n), np.repeat(np.arange(n), steps), n)
        return delta * sums

    def compute(self, images, classes, scores):
        baselines = baseline_images(self.baseline, images)
        difference = scores - self.class_scores(baselines, classes)
        if self.steps != "auto":
            maps = self.integrate(images, baselines, classes, self.steps)
            used = np.full(len(images), self.steps)
        else:
            maps, used = self._auto(images, baselines, classes, difference)
        gap = maps.reshape(len(maps), -1).sum(axis=1) - difference
        with np.errstate(divide="ignore", invalid="ignore"):
            relative = np.where(difference != 0, np.abs(gap) / np.abs(difference), np.where(gap == 0, 0.0, np.inf))
        details = {"completeness_gap": gap, "relative_gap": relative, "score_difference": difference,
                   "steps": used.astype(np.int64)}
        return maps, details

    def _auto(self, images, baselines, classes, difference):
        """Each image's steps doubled from 50 until its relative gap is within tolerance."""
        maps = np.zeros(images.shape, np.float64)
        used = np.zeros(len(images), np.int64)
        todo = np.arange(len(images))
        steps = min(50, self.max_steps)
        while len(todo):
            found = self.integrate(images[todo], baselines[todo], classes[todo], steps)
            maps[todo], used[todo] = found, steps
            gap = np.abs(found.reshape(len(todo), -1).sum(axis=1) - difference[todo])
            done = gap <= self.tolerance * np.abs(difference[todo])
            if steps >= self.max_steps:
                break
            todo = todo[~done]
            steps = min(2 * steps, self.max_steps)
        return maps, used
