import pytest
import torch

from initlab import InitlabError, datasets


@pytest.mark.parametrize("name", datasets.names())
def test_every_dataset_is_split_standardized_and_binary(name):
    X_train, y_train, X_test, y_test = datasets.make(name, n=500, noise=0.1, seed=3)
    assert X_train.shape == (350, 2) and X_test.shape == (150, 2)
    assert X_train.dtype == torch.float32
    assert torch.allclose(X_train.mean(0), torch.zeros(2), atol=1e-5)
    assert torch.allclose(X_train.std(0, unbiased=False), torch.ones(2), atol=1e-4)
    assert set(y_train.tolist()) == {0.0, 1.0} and set(y_test.tolist()) == {0.0, 1.0}
    assert abs(y_train.mean().item() - 0.5) < 0.05  # stratified, balanced classes


def test_same_seed_same_points_other_seed_other_points():
    a, b, c = (datasets.make("moons", seed=s) for s in (0, 0, 1))
    assert torch.equal(a.X_train, b.X_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.X_train, c.X_train)


def test_moons_is_sklearns_make_moons():
    from sklearn.datasets import make_moons

    d = datasets.make("moons", n=1000, noise=0.0, seed=0)
    X, _ = make_moons(n_samples=1000, noise=0.0)
    # standardized make_moons without noise: both coordinate sets are the same points up to affine map
    raw = torch.as_tensor(X, dtype=torch.float32)
    raw = (raw - raw.mean(0)) / raw.std(0, unbiased=False)
    all_points = torch.cat([d.X_train, d.X_test])
    assert torch.cdist(all_points, raw).min(1).values.max() < 0.05


@pytest.mark.parametrize("kwargs, match", [
    ({"name": "moon"}, "Did you mean 'moons'"),
    ({"n": 3}, "n >= 10"),
    ({"noise": -0.1}, "noise must be >= 0"),
])
def test_bad_dataset_arguments(kwargs, match):
    with pytest.raises(InitlabError, match=match):
        datasets.make(**kwargs)
