"""Image parametrisations for feature visualization: pixels, a decorrelated Fourier
spectrum (Lucid) and a phase with a fixed natural-image magnitude (MaCo).

Gradient ascent can optimise the pixels themselves (the chapter) or any variable that
a differentiable function maps to an image. Two such maps are here, both written with
``keras.ops`` (so they run, and are differentiated, on every backend):

- **fft** (Olah et al., *Feature Visualization*, Distill 2017; Lucid): the variable is
  a real/imaginary spectrum ``(N, 2, C, H, W // 2 + 1)``. Each frequency ``f`` (cycles
  per pixel) is scaled by ``sqrt(H W) / max(f, 1 / max(H, W))`` (:func:`fft_scale`),
  the spectrum goes through the inverse real 2-D FFT (:func:`irfft2`) and is divided
  by 4, the three channels are mixed by the ImageNet colour-correlation square root
  (:data:`COLOR_CORRELATION`, divided by its largest column norm) and a sigmoid maps
  the result into the model's pixel range. Equal steps on every coefficient then
  change low and high frequencies equally in the image's natural (1/f) statistics.
- **maco** (Fel et al., *Unlocking Feature Visualization for Deeper Networks with
  MAgnitude Constrained Optimization*, NeurIPS 2023): the variable is the phase
  ``(N, C, H, W // 2 + 1)``; the magnitude is fixed to the average amplitude spectrum
  of natural photographs (:func:`natural_spectrum`). The phase is standardised, the
  spectrum inverted, the image standardised, colour-recorrelated and put through a
  sigmoid into the pixel range.

:func:`natural_spectrum` *measures* the magnitude (no fitted power law): the mean
amplitude of the real 2-D FFT of the four everyday colour photographs that ship with
scikit-image (astronaut, chelsea, coffee, rocket), each resized to the optimised size,
in the decorrelated colour space and standardised as MaCo's images are.
"""

from __future__ import annotations

import functools

import keras
import numpy as np

__all__ = [
    "COLOR_CORRELATION",
    "PARAMETRIZATIONS",
    "fft_images",
    "fft_scale",
    "initial_parameters",
    "irfft2",
    "maco_images",
    "natural_spectrum",
    "parameters_to_images",
    "rfft2_frequencies",
    "spectral_slope",
]

PARAMETRIZATIONS = ("pixel", "fft", "maco")

_SVD_SQRT = np.array(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float64
)
COLOR_CORRELATION = (_SVD_SQRT / np.linalg.norm(_SVD_SQRT, axis=0).max()).astype(np.float32)
"""The square root of ImageNet's colour covariance (Lucid's ``color_correlation_svd_sqrt``)
divided by its largest column norm. A decorrelated pixel ``d`` (a row vector) becomes
the RGB pixel ``d @ COLOR_CORRELATION.T``."""

_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
_FFT_INIT_STD = 0.01  # Lucid's start spectrum: normal(0, 0.01)
_EPS = 1e-5


def rfft2_frequencies(h: int, w: int) -> np.ndarray:
    """Frequency magnitudes (cycles per pixel) of a real 2-D FFT's coefficients.

    Returns
    -------
    numpy.ndarray
        float64 (h, w // 2 + 1): ``sqrt(fy**2 + fx**2)``.

    Examples
    --------
    >>> rfft2_frequencies(4, 4).shape
    (4, 3)
    """
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    return np.sqrt(fx**2 + fy**2)


def fft_scale(h: int, w: int, *, decay_power: float = 1.0) -> np.ndarray:
    """Lucid's spectrum scale: ``sqrt(h w) / max(f, 1 / max(h, w)) ** decay_power``.

    Examples
    --------
    >>> s = fft_scale(8, 8)
    >>> s.shape, float(s[0, 0]) == 8 * 8.0
    ((8, 5), True)
    """
    f = rfft2_frequencies(h, w)
    return (np.sqrt(h * w) / np.maximum(f, 1.0 / max(h, w)) ** decay_power).astype(np.float32)


def irfft2(real, imag, h: int, w: int):
    """Inverse real 2-D FFT over the last two axes, with ``keras.ops`` only.

    ``(..., h, w // 2 + 1)`` real and imaginary parts to a real ``(..., h, w)`` tensor,
    as ``numpy.fft.irfft2(real + 1j * imag, s=(h, w))``: the inverse complex FFT over
    the rows (``ifft(z) = conj(fft(conj(z))) / h``, with ``keras.ops.fft`` on the last
    axis), then ``keras.ops.irfft`` over the columns. Differentiable on every backend.

    Examples
    --------
    >>> import numpy as np, keras
    >>> z = np.fft.rfft2(np.arange(12.0).reshape(3, 4))
    >>> out = irfft2(z.real.astype("float32"), z.imag.astype("float32"), 3, 4)
    >>> np.round(keras.ops.convert_to_numpy(out), 4)
    array([[ 0.,  1.,  2.,  3.],
           [ 4.,  5.,  6.,  7.],
           [ 8.,  9., 10., 11.]], dtype=float32)
    """
    ops = keras.ops
    real = ops.convert_to_tensor(real, dtype="float32")
    imag = ops.convert_to_tensor(imag, dtype="float32")
    rank = len(real.shape)
    swap = list(range(rank - 2)) + [rank - 1, rank - 2]
    fr, fi = ops.fft((ops.transpose(real, swap), -ops.transpose(imag, swap)))
    rows_real = ops.transpose(fr, swap) / h
    rows_imag = -ops.transpose(fi, swap) / h
    return ops.irfft((rows_real, rows_imag), fft_length=w)


def _to_pixel_range(decorrelated, pixel_range):
    """(N, C, H, W) decorrelated values -> (N, H, W, C) images in ``pixel_range``."""
    ops = keras.ops
    x = ops.transpose(decorrelated, (0, 2, 3, 1))
    if x.shape[-1] == 3:
        x = ops.matmul(x, ops.convert_to_tensor(COLOR_CORRELATION.T))
    lo, hi = pixel_range
    return lo + (hi - lo) * ops.sigmoid(x)


def fft_images(spectrum, scale, *, pixel_range=(0.0, 255.0), width=None):
    """Images from a Lucid spectrum variable.

    Parameters
    ----------
    spectrum : tensor
        (N, 2, C, H, W // 2 + 1): real and imaginary parts.
    scale : array
        (H, W // 2 + 1), :func:`fft_scale`.
    pixel_range : (low, high)
    width : int, optional
        The image width W (default: the even ``2 * (W // 2)``; pass it for odd widths).

    Returns
    -------
    tensor
        (N, H, W, C) in ``pixel_range`` (a sigmoid keeps it strictly inside).

    Examples
    --------
    >>> import numpy as np, keras
    >>> x = fft_images(np.zeros((1, 2, 3, 8, 5), "float32"), fft_scale(8, 8))
    >>> keras.ops.convert_to_numpy(x)[0, 0, 0]  # a zero spectrum is mid-grey
    array([127.5, 127.5, 127.5], dtype=float32)
    """
    ops = keras.ops
    spectrum = ops.convert_to_tensor(spectrum, dtype="float32")
    h = spectrum.shape[-2]
    w = width or 2 * (spectrum.shape[-1] - 1)
    scale = ops.convert_to_tensor(scale, dtype="float32")
    image = irfft2(spectrum[:, 0] * scale, spectrum[:, 1] * scale, h, w) / 4.0
    return _to_pixel_range(image, pixel_range)


def maco_images(phase, magnitude, *, pixel_range=(0.0, 255.0), width=None):
    """Images from MaCo's phase variable and a fixed magnitude.

    Per image: the phase is standardised (zero mean, unit standard deviation over all
    its coefficients), combined with ``magnitude`` into a spectrum, inverted
    (:func:`irfft2`), standardised again, colour-recorrelated and mapped into
    ``pixel_range`` by a sigmoid.

    Parameters
    ----------
    phase : tensor
        (N, C, H, W // 2 + 1).
    magnitude : array
        (C, H, W // 2 + 1), e.g. :func:`natural_spectrum`.
    pixel_range : (low, high)
    width : int, optional
        The image width W (default: the even ``2 * (W // 2)``; pass it for odd widths).

    Returns
    -------
    tensor
        (N, H, W, C).
    """
    ops = keras.ops
    phase = ops.convert_to_tensor(phase, dtype="float32")
    h = phase.shape[-2]
    w = width or 2 * (phase.shape[-1] - 1)
    phase = _standardise(phase)
    magnitude = ops.convert_to_tensor(magnitude, dtype="float32")
    image = irfft2(ops.cos(phase) * magnitude, ops.sin(phase) * magnitude, h, w)
    return _to_pixel_range(_standardise(image), pixel_range)


def _standardise(x):
    ops = keras.ops
    axes = tuple(range(1, len(x.shape)))
    x = x - ops.mean(x, axis=axes, keepdims=True)
    return x / (ops.std(x, axis=axes, keepdims=True) + _EPS)


@functools.lru_cache(maxsize=8)
def natural_spectrum(h: int, w: int) -> np.ndarray:
    """The mean amplitude spectrum of natural photographs, measured at (h, w).

    Each of scikit-image's astronaut, chelsea, coffee and rocket photographs is resized
    to (h, w) (PIL, bicubic), scaled to [0, 1], taken to the decorrelated colour space
    (the inverse of :data:`COLOR_CORRELATION`), standardised, and its real 2-D FFT's
    amplitude is averaged over the photographs.

    Returns
    -------
    numpy.ndarray
        float32 (3, h, w // 2 + 1), read-only (cached).

    Examples
    --------
    >>> natural_spectrum(32, 32).shape
    (3, 32, 17)
    """
    import skimage.data
    from PIL import Image

    inverse = np.linalg.inv(COLOR_CORRELATION.T.astype(np.float64))
    total = np.zeros((3, h, w // 2 + 1))
    for name in _PHOTOS:
        photo = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        x = np.asarray(photo.resize((w, h), Image.BICUBIC), dtype=np.float64) / 255.0
        d = x @ inverse
        d = (d - d.mean()) / d.std()
        total += np.abs(np.fft.rfft2(np.moveaxis(d, -1, 0)))
    out = (total / len(_PHOTOS)).astype(np.float32)
    out.flags.writeable = False
    return out


def initial_parameters(parametrization: str, seed: int, keys, shape) -> np.ndarray:
    """The start variable of each image, seeded by ``(seed, key)`` only.

    ``shape`` is (H, W, C). ``pixel``: the chapter's grey noise, uniform in
    [0.4, 0.6] as fractions of the pixel range (returned in [0, 1]: the caller maps
    it); ``fft``: normal(0, 0.01) spectra (N, 2, C, H, W // 2 + 1); ``maco``: normal(0, 1)
    phases (N, C, H, W // 2 + 1).
    """
    h, w, c = shape
    if parametrization == "pixel":
        var_shape = (h, w, c)
    elif parametrization == "fft":
        var_shape = (2, c, h, w // 2 + 1)
    else:
        var_shape = (c, h, w // 2 + 1)
    out = np.empty((len(keys), *var_shape), dtype=np.float32)
    for k, key in enumerate(keys):
        # spawn_key, not [seed, key]: SeedSequence treats trailing zeros as absent.
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, *key)))
        if parametrization == "pixel":
            out[k] = rng.uniform(0.4, 0.6, var_shape)
        elif parametrization == "fft":
            out[k] = rng.normal(0.0, _FFT_INIT_STD, var_shape)
        else:
            out[k] = rng.normal(0.0, 1.0, var_shape)
    return out


def parameters_to_images(parametrization: str, params, *, pixel_range, size):
    """The images (N, H, W, C) a variable stands for (the identity for ``pixel``)."""
    h, w = size
    if parametrization == "fft":
        return fft_images(params, fft_scale(h, w), pixel_range=pixel_range, width=w)
    if parametrization == "maco":
        return maco_images(params, natural_spectrum(h, w), pixel_range=pixel_range, width=w)
    return params


def spectral_slope(images, *, bins: int = 16) -> np.ndarray:
    """Slope of the radially averaged log amplitude spectrum, per image.

    The grey-level image (channel mean, mean removed) is Fourier transformed; the
    amplitude is averaged over ``bins`` rings whose radii are spaced evenly in
    log-frequency from 1 bin to half the smaller side (so every octave weighs the
    same, not the many high-frequency rings), and ``log(amplitude)`` is fitted against
    ``log(radius)`` by least squares. Natural photographs give about -1 to -2 (their
    1/f amplitude spectrum); white noise about 0.

    Parameters
    ----------
    images : array
        (N, H, W, C) or (N, H, W).
    bins : int
        Log-spaced rings.

    Returns
    -------
    numpy.ndarray
        float64 (N,).

    Examples
    --------
    >>> import numpy as np
    >>> noise = np.random.default_rng(0).normal(size=(1, 64, 64))
    >>> bool(abs(spectral_slope(noise)[0]) < 0.2)
    True
    """
    x = np.asarray(images, dtype=np.float64)
    if x.ndim == 4:
        x = x.mean(axis=-1)
    n, h, w = x.shape
    x = x - x.mean(axis=(1, 2), keepdims=True)
    amplitude = np.abs(np.fft.fftshift(np.fft.fft2(x), axes=(1, 2)))
    yy, xx = np.indices((h, w))
    radius = np.hypot(yy - h // 2, xx - w // 2)
    edges = np.geomspace(1.0, min(h, w) / 2, bins + 1)
    ring = np.digitize(radius.ravel(), edges) - 1  # -1 below the first edge, bins beyond
    used = (ring >= 0) & (ring < bins)
    counts = np.bincount(ring[used], minlength=bins)
    keep = counts > 0
    centres = np.sqrt(edges[:-1] * edges[1:])[keep]
    slopes = np.empty(n)
    for i in range(n):
        sums = np.bincount(ring[used], weights=amplitude[i].ravel()[used], minlength=bins)
        mean = np.maximum(sums[keep] / counts[keep], 1e-12)
        slopes[i] = np.polyfit(np.log(centres), np.log(mean), 1)[0]
    return slopes
