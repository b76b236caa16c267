"""The chapter's claims, trained: symmetry under constant init, and random inits that learn."""

import math

import pytest
import torch

import initlab
from initlab import InitlabError
from initlab.experiment import linear_baseline

CHAPTER_NET = [32, 32, 32, 32]


def trained(data, scheme, dtype=torch.float32, steps=1500, optimizer="sgd", lr=0.1, seed=0, **params):
    model = initlab.mlp(2, CHAPTER_NET, 1, "relu").to(dtype)
    initlab.initialize(model, scheme, seed=seed, **params)
    result = initlab.train(model, data, steps=steps, lr=lr, optimizer=optimizer, seed=seed)
    return model, result


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_constant_init_stays_one_neuron_and_no_better_than_a_line(moons, dtype):
    model, result = trained(moons, "constant", dtype=dtype, value=0.05)
    widths = initlab.effective_width(model, moons.X_train)
    assert [w.effective_width for w in widths] == [1, 1, 1, 1]
    assert not result.diverged
    assert result.final["test_accuracy"] <= linear_baseline(moons) + 0.02


@pytest.mark.parametrize("scheme", ["default", "xavier_uniform"])
def test_random_init_uses_the_full_width_and_learns_the_moons(moons, scheme):
    model, result = trained(moons, scheme)
    widths = initlab.effective_width(model, moons.X_train)
    assert [w.effective_width for w in widths] == CHAPTER_NET
    assert result.final["test_accuracy"] >= 0.95


def test_too_large_weights_diverge_as_a_result_not_a_crash(moons):
    model, result = trained(moons, "normal", std=3.0, steps=200)
    assert result.diverged and isinstance(result.diverged_step, int) and 1 <= result.diverged_step <= 200
    assert result.history["step"][-1] == result.diverged_step  # training stopped there
    d = result.to_dict()  # JSON-ready: no NaN survives
    assert all(v is None or math.isfinite(v) for v in d["final"].values() if isinstance(v, float) or v is None)


def test_too_small_weights_leave_the_loss_where_it_started(moons):
    _, result = trained(moons, "normal", std=0.01, steps=500)
    assert abs(result.final["train_loss"] - math.log(2)) < 1e-3


@pytest.mark.parametrize("optimizer, batch_size", [("sgd", None), ("adam", 64)])
def test_same_seed_same_result(small_moons, optimizer, batch_size):
    runs = []
    for _ in range(2):
        model = initlab.mlp(2, [8, 8], 1, "tanh")
        initlab.initialize(model, "xavier_uniform", seed=4)
        r = initlab.train(model, small_moons, steps=60, lr=0.01, optimizer=optimizer, batch_size=batch_size, seed=9)
        runs.append((r, [p.detach().clone() for p in model.parameters()]))
    (r1, p1), (r2, p2) = runs
    assert r1.history == r2.history
    assert all(torch.equal(a, b) for a, b in zip(p1, p2))


def test_minibatch_order_depends_on_the_seed_and_global_rng_is_untouched(small_moons):
    finals = []
    for seed in (1, 2):
        model = initlab.mlp(2, [8], 1, "tanh")
        initlab.initialize(model, "xavier_uniform", seed=0)
        state = torch.get_rng_state()
        initlab.train(model, small_moons, steps=20, lr=0.1, batch_size=16, seed=seed)
        assert torch.equal(state, torch.get_rng_state())
        finals.append(model.out.weight.detach().clone())
    assert not torch.equal(*finals)


def test_history_records_every_eval_and_steps_to(small_moons):
    model = initlab.mlp(2, [16], 1, "tanh")
    initlab.initialize(model, "xavier_uniform", seed=0)
    r = initlab.train(model, small_moons, steps=95, lr=0.5, eval_every=10)
    assert r.history["step"] == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95]
    step = r.steps_to(0.8)
    if step is not None:
        i = r.history["step"].index(step)
        assert r.history["test_accuracy"][i] >= 0.8 and all(a < 0.8 for a in r.history["test_accuracy"][:i])


@pytest.mark.parametrize("kwargs, match", [
    ({"steps": -1}, "steps"), ({"lr": 0}, "lr"), ({"optimizer": "adma"}, "unknown optimizer 'adma'. Did you mean 'adam'"),
    ({"batch_size": 0}, "batch_size"), ({"device": "tpu"}, "device"),
])
def test_bad_training_arguments(small_moons, kwargs, match):
    with pytest.raises(InitlabError, match=match):
        initlab.train(initlab.mlp(2, [4], 1), small_moons, **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_a_clear_error(small_moons):
    with pytest.raises(InitlabError, match="no CUDA GPU"):
        initlab.train(initlab.mlp(2, [4], 1), small_moons, device="cuda")


def test_track_every_records_per_layer_std_flat_when_vanishing_growing_when_exploding(moons):
    tracked = {}
    for std in (0.01, 3.0):
        model = initlab.mlp(2, CHAPTER_NET, 1, "relu")
        initlab.initialize(model, "normal", std=std, seed=0)
        r = initlab.train(model, moons, steps=100, lr=0.1, track_every=25)
        tracked[std] = r.tracked
    small, large = tracked[0.01], tracked[3.0]
    assert small["layers"] == ["fc1", "fc2", "fc3", "fc4", "out"]
    assert small["step"] == [0, 1, 2, 3, 4, 25, 50, 75]
    first, last = small["preact_std"][0], small["preact_std"][-1]
    assert all(b < a / 5 for a, b in zip(first, first[1:]))  # vanishing: every layer far smaller
    # and it stays so over the steps: every deeper layer far below the first at every recorded step
    assert all(v < row[0] / 10 for row in small["preact_std"] for v in row[1:])
    assert last[0] == pytest.approx(first[0], rel=0.05)
    assert all(b > 5 * a for a, b in zip(large["preact_std"][0], large["preact_std"][0][1:]))  # exploding
    assert large["step"][-1] < 5  # it diverged within the first steps, and that step was recorded
