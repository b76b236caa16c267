"""Two-dimensional toy datasets for binary classification, seeded, standardized and split.

Class 1 is drawn as "black" and class 0 as "white", as in the chapter.

>>> from initlab import datasets
>>> X_train, y_train, X_test, y_test = datasets.make("moons", n=1000, noise=0.2, seed=0)
>>> X_train.shape, y_train.shape
(torch.Size([700, 2]), torch.Size([700]))
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn import datasets as skd
from sklearn.model_selection import train_test_split

from .errors import InitlabError, unknown_name


@dataclass
class Dataset:
    """A train/test split of 2-D points; unpacks as ``X_train, y_train, X_test, y_test``.

    ``X_*`` are float32 tensors ``(n, 2)``, standardized with the training set's mean and std;
    ``y_*`` are float32 tensors of 0 (white) and 1 (black)."""

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    name: str = "moons"
    config: dict = field(default_factory=dict)

    def __iter__(self):
        return iter((self.X_train, self.y_train, self.X_test, self.y_test))

    def __repr__(self) -> str:
        share = float(self.y_train.float().mean()) if self.y_train.numel() else float("nan")
        return (f"Dataset({self.name}: {len(self.X_train)} train and {len(self.X_test)} test points, "
                f"{self.X_train.shape[1] if self.X_train.dim() == 2 else '?'} features, labels 0/1 "
                f"({share:.0%} of training labels are 1))")

    def to(self, device=None, dtype=None) -> "Dataset":
        """The same data on ``device`` with features in ``dtype`` (labels follow the features)."""
        conv = lambda t: t.to(device=device, dtype=dtype)  # noqa: E731
        return Dataset(conv(self.X_train), conv(self.y_train), conv(self.X_test), conv(self.y_test),
                       self.name, self.config)


def _moons(n, noise, rng):
    return skd.make_moons(n_samples=n, noise=noise, random_state=rng.integers(2**31))


def _circles(n, noise, rng):
    return skd.make_circles(n_samples=n, noise=noise, factor=0.5, random_state=rng.integers(2**31))


def _blobs(n, noise, rng):
    # two Gaussian blobs; noise widens them so that at noise 1 they overlap noticeably
    return skd.make_blobs(n_samples=n, centers=[[-1.0, -1.0], [1.0, 1.0]], cluster_std=0.4 + noise,
                          random_state=rng.integers(2**31))


def _xor(n, noise, rng):
    X = rng.uniform(-1, 1, size=(n, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    return X + rng.normal(0, noise, size=X.shape), y


def _spiral(n, noise, rng):
    half = n // 2
    t = np.sqrt(rng.uniform(0, 1, size=n)) * 3 * np.pi  # denser where the arms are long
    y = (np.arange(n) >= half).astype(int)
    angle = t + np.pi * y
    X = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1) / (3 * np.pi)
    return X + rng.normal(0, noise / 4, size=X.shape), y


GENERATORS = {"moons": _moons, "circles": _circles, "blobs": _blobs, "xor": _xor, "spiral": _spiral}


def _whole(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _real(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and bool(np.isfinite(v))


def names() -> list[str]:
    """The datasets :func:`make` knows."""
    return sorted(GENERATORS)


def make(name: str = "moons", n: int = 1000, noise: float = 0.2, seed: int = 0,
         test_fraction: float = 0.3) -> Dataset:
    """Make dataset ``name`` with ``n`` points and label noise ``noise``, split and standardized.

    Parameters
    ----------
    name : {"moons", "circles", "blobs", "xor", "spiral"}, default "moons"
        ``moons`` is the chapter's ``sklearn.datasets.make_moons``.
    n : int, default 1000
        Points in all, before the split.
    noise : float, default 0.2
        Standard deviation of the Gaussian noise added to the points (the blobs' extra spread).
    seed : int, default 0
        The same seed gives the same points and the same split.
    test_fraction : float, default 0.3
        The share of points held out for testing (stratified by class).
    """
    if not isinstance(name, str) or name not in GENERATORS:
        raise unknown_name("dataset", name, GENERATORS)
    if not _whole(n) or n < 10:
        raise InitlabError(f"a dataset needs n >= 10 points; got n={n!r}.")
    if not (_real(noise) and noise >= 0):
        raise InitlabError(f"noise must be >= 0, a finite number; got noise={noise!r}.")
    if not _whole(seed) or seed < 0:
        raise InitlabError(f"seed must be a non-negative integer; got seed={seed!r}.")
    if not (_real(test_fraction) and 0 < test_fraction < 1):
        raise InitlabError(f"test_fraction must lie in (0, 1); got {test_fraction!r}.")
    n, seed = int(n), int(seed)
    rng = np.random.default_rng(seed)
    X, y = GENERATORS[name](n, noise, rng)
    return split(X, y, rng, test_fraction, name,
                 {"name": name, "n": n, "noise": noise, "seed": seed, "test_fraction": test_fraction})


def split(X, y, rng: np.random.Generator, test_fraction: float = 0.3, name: str = "custom",
          config: dict | None = None) -> Dataset:
    """Points ``X`` (n, 2) and 0/1 labels ``y`` split as :func:`make` splits them (stratified, the split
    drawn from ``rng``) and standardized with the training set's mean and std (a constant column
    is only centred). The one home of the built-in datasets' standardization, for data of any origin
    (the playground's uploads)."""
    X, y = np.asarray(X, dtype=float), np.asarray(y)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=test_fraction, stratify=y,
                                              random_state=int(rng.integers(2**31)))
    mean, std = X_tr.mean(axis=0), X_tr.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    as_t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    return Dataset(as_t((X_tr - mean) / std), as_t(y_tr), as_t((X_te - mean) / std), as_t(y_te), name,
                   config if config is not None else {"name": name, "n": len(X), "test_fraction": test_fraction})
