"""Bad input through the library: every entry point answers with one InitlabError that names the problem.

One table of (call, fragment of the message): wrong kinds of objects, scheme parameters that are NaN,
inf, of the wrong type or out of range, training data that cannot be trained on (labels other than 0
and 1, several outputs, NaN inputs, mismatched widths and shapes), and bad arguments to the datasets,
theory and store functions. Nothing trains: every check runs before any work.
"""

import math

import numpy as np
import pytest
import torch
from torch import nn

import initlab
from initlab import InitlabError, theory
from initlab.datasets import Dataset
from initlab.schemes import normal as normal_scheme, parse_spec

NAN, INF = math.nan, math.inf
DATA = initlab.datasets.make("moons", n=100, seed=0)
X = DATA.X_train
RUNS = [{"scheme": "xavier_uniform", "seed": 0}]


def mlp(in_features=2, out_features=1):
    return initlab.mlp(in_features, [4, 4], out_features, "tanh")


def data(**replace) -> Dataset:
    """DATA with some of its tensors replaced."""
    fields = {"X_train": DATA.X_train, "y_train": DATA.y_train, "X_test": DATA.X_test, "y_test": DATA.y_test}
    return Dataset(**{**fields, **replace})


def with_nan(t: torch.Tensor, value=NAN) -> torch.Tensor:
    t = t.clone()
    t[3, 1] = value
    return t


def init(scheme="xavier_uniform", **params):
    return lambda: initlab.initialize(mlp(), scheme, seed=0, **params)


def train(model=None, d=DATA, **kw):
    return lambda: initlab.train(mlp() if model is None else model, d, steps=2, **kw)


def train_many(d=DATA, runs=RUNS, **kw):
    return lambda: initlab.train_many(d, runs, **{"hidden": [4], "steps": 2, **kw})


class _NoOutput(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 3)

    def forward(self, x):
        return (self.fc(x), x)


def _store_file(tmp_path):
    path = tmp_path / "runs.db"
    path.write_text("not a database")
    return path


CASES = {
    # ---- initialize: the model, the scheme, the seed, overrides and roles
    "initialize a string": (lambda: initlab.initialize("mlp", "xavier_uniform"), "needs an nn.Module or a tensor"),
    "initialize unknown scheme": (init("xavier_unifrom"), "Did you mean 'xavier_uniform'"),
    "initialize unknown param": (init("normal", sd=0.1), "takes no parameter 'sd'"),
    "initialize negative seed": (lambda: initlab.initialize(mlp(), "normal", seed=-1), "seed must be a non-negative"),
    "initialize string seed": (lambda: initlab.initialize(mlp(), "normal", seed="a"), "seed must be a non-negative"),
    "initialize lsuv without data": (init("lsuv"), "'lsuv' needs data"),
    "initialize scheme a number": (lambda: initlab.initialize(mlp(), 5), "a scheme is a name"),
    "initialize scheme name a number": (lambda: initlab.initialize(mlp(), {"name": 3}), "a scheme's name is a string"),
    "initialize params a list": (lambda: initlab.initialize(mlp(), {"name": "normal", "params": [1]}),
                                 "a scheme's params are a dict"),
    "initialize override inf": (lambda: initlab.initialize(mlp(), "normal", overrides={"out": ("normal", {"std": INF})}),
                                "needs std as a finite number; got std=inf"),
    "initialize override no match": (lambda: initlab.initialize(mlp(), "normal", overrides={"head": "zeros"}),
                                     "matches no layer"),
    "initialize role unknown": (lambda: initlab.initialize(mlp(), "normal", roles={"bogus": "zeros"}), "unknown role"),
    "initialize role a number": (lambda: initlab.initialize(mlp(), "normal", roles={"recurrent": 5}), "a scheme is a name"),
    # ---- each scheme's parameters: NaN, inf, the wrong type, out of range
    "normal std nan": (init("normal", std=NAN), "needs std as a finite number; got std=nan"),
    "normal std inf": (init("normal", std=INF), "got std=inf"),
    "normal std text": (init("normal", std="abc"), "needs std as a finite number; got std='abc'"),
    "normal std negative": (init("normal", std=-1.0), "needs std >= 0"),
    "normal mean nan": (init("normal", mean=NAN), "needs mean as a finite number"),
    "constant value nan": (init("constant", value=NAN), "needs value as a finite number; got value=nan"),
    "constant value inf": (init("constant", value=-INF), "got value=-inf"),
    "constant value list": (init("constant", value=[0.1]), "needs value as a finite number"),
    "uniform bound negative": (init("uniform", bound=-0.1), "needs bound >= 0"),
    "uniform bound text": (init("uniform", bound="wide"), "got bound='wide'"),
    "variance_scaling scale zero": (init("variance_scaling", scale=0.0), "needs scale > 0"),
    "variance_scaling scale negative": (init("variance_scaling", scale=-2.0), "needs scale > 0"),
    "variance_scaling scale nan": (init("variance_scaling", scale=NAN), "got scale=nan"),
    "variance_scaling mode unknown": (init("variance_scaling", mode="fan_sideways"), "unknown mode 'fan_sideways'"),
    "variance_scaling mode number": (init("variance_scaling", mode=1), "needs mode as a name"),
    "variance_scaling distribution": (init("variance_scaling", distribution="cauchy"), "unknown distribution 'cauchy'"),
    "xavier gain nan": (init("xavier_uniform", gain=NAN), "needs gain as a finite number; got gain=nan"),
    "xavier gain text": (init("xavier_normal", gain="big"), "got gain='big'"),
    "xavier gain bool": (init("xavier_normal", gain=True), "got gain=True"),
    "he nonlinearity unknown": (init("he_normal", nonlinearity="relux"), "Did you mean 'relu'"),
    "he nonlinearity number": (init("he_uniform", nonlinearity=2), "needs nonlinearity as a name"),
    "he negative_slope text": (init("he_uniform", nonlinearity="leaky_relu", negative_slope="a"),
                               "needs negative_slope as a finite number"),
    "orthogonal gain inf": (init("orthogonal", gain=INF), "got gain=inf"),
    "bias nan": (init("xavier_uniform", bias=NAN), "needs bias as a finite number; got bias=nan"),
    "bias bool": (init("xavier_uniform", bias=True), "got bias=True"),
    "bias_std negative": (init("xavier_uniform", bias_std=-0.1), "needs bias_std >= 0"),
    "bias and bias_std": (init("xavier_uniform", bias=0.1, bias_std=0.1), "not both"),
    "forget_bias text": (init("xavier_uniform", forget_bias="one"), "needs forget_bias as a finite number"),
    "default takes nothing": (init("default", std=0.1), "scheme 'default' takes no parameter 'std'"),
    "lsuv target_std nan": (lambda: initlab.initialize(mlp(), "lsuv", inputs=X, target_std=NAN),
                            "needs target_std as a finite number"),
    "lsuv max_iter float": (lambda: parse_spec(("lsuv", {"max_iter": 2.5})), "needs max_iter as a whole number"),
    "lsuv tol zero": (lambda: parse_spec({"name": "lsuv", "params": {"tol": 0}}), "needs tol > 0"),
    "scheme function itself": (lambda: initlab.variance_scaling(torch.empty(3, 3), scale="a"), "got scale='a'"),
    "normal function itself": (lambda: normal_scheme(torch.empty(3, 3), std=NAN), "got std=nan"),
    "fans of a string": (lambda: initlab.fans("w"), "fans needs a weight tensor"),
    "gain unknown": (lambda: initlab.gain("relux"), "Did you mean 'relu'"),
    "gain of a list": (lambda: initlab.gain(["relu"]), "unknown nonlinearity"),
    # ---- train: the model, the data, the arguments
    "train a string model": (lambda: initlab.train("mlp", DATA), "train needs model as a torch nn.Module"),
    "train a tuple dataset": (train(d=tuple(DATA)), "train needs data as an initlab Dataset"),
    "train labels 0 and 2": (train(d=data(y_train=DATA.y_train * 2)), "y_train must hold the labels 0 and 1 only"),
    "train labels -1 and 1": (train(d=data(y_test=DATA.y_test * 2 - 1)), "y_test must hold the labels 0 and 1 only"),
    "train three outputs": (train(mlp(out_features=3)), "the model has 3 outputs per point"),
    "train a tuple output": (train(_NoOutput()), "must return one tensor of logits"),
    "train NaN in X": (train(d=data(X_train=with_nan(DATA.X_train))), "X_train holds NaN or inf (1 of"),
    "train inf in X_test": (train(d=data(X_test=with_nan(DATA.X_test, INF))), "X_test holds NaN or inf"),
    "train model too wide": (train(mlp(in_features=3)),
                             "X_train has 2 features per point but the model's first layer 'fc1' takes 3"),
    "train X_test too wide": (train(d=data(X_test=torch.randn(30, 3))), "X_test has 3 features per point but X_train has 2"),
    "train y a column": (train(d=data(y_train=DATA.y_train[:, None])), "y_train must be 1-D"),
    "train y too short": (train(d=data(y_test=DATA.y_test[:5])), "y_test must be 1-D, one label per point"),
    "train X 1-D": (train(d=data(X_train=DATA.X_train[:, 0])), "X_train must be 2-D"),
    "train numpy arrays": (train(d=data(X_train=DATA.X_train.numpy())), "needs X_train as a torch.Tensor"),
    "train inputs that do not fit": (train(nn.Sequential(nn.Unflatten(1, (1, 3)), nn.Flatten(), nn.Linear(3, 1))),
                                     "the inputs do not fit the model"),
    "train steps negative": (lambda: initlab.train(mlp(), DATA, steps=-1), "steps must be a non-negative integer"),
    "train lr nan": (train(lr=NAN), "lr must be a positive number"),
    "train lr text": (train(lr="0.1"), "lr must be a positive number"),
    "train eval_every text": (train(eval_every="a"), "eval_every must be a positive integer"),
    "train seed negative": (train(seed=-3), "seed must be a non-negative integer"),
    "train callback not callable": (train(callback=5), "callback must be callable"),
    "train track_every negative": (train(track_every=-1), "track_every must be a positive integer"),
    "train optimizer unknown": (train(optimizer="adma"), "Did you mean 'adam'"),
    # ---- train_many: the same data check, and its own arguments
    "train_many a tuple dataset": (train_many(d=tuple(DATA)), "train_many needs data"),
    "train_many labels 0 and 2": (train_many(d=data(y_train=DATA.y_train * 2)), "y_train must hold the labels 0 and 1"),
    "train_many NaN in X": (train_many(d=data(X_train=with_nan(DATA.X_train))), "X_train holds NaN or inf"),
    "train_many y a column": (train_many(d=data(y_train=DATA.y_train[:, None])), "y_train must be 1-D"),
    "train_many one bad data set of two": (train_many(d=[DATA, data(y_test=DATA.y_test + 1)], runs=RUNS * 2),
                                           "y_test must hold the labels 0 and 1"),
    "train_many runs a string": (train_many(runs="xavier_uniform"), "runs as a list of dicts"),
    "train_many scheme param nan": (train_many(runs=[{"scheme": "normal", "params": {"std": NAN}}]), "got std=nan"),
    "train_many hidden text": (train_many(hidden="abc"), "hidden widths"),
    "train_many activation number": (train_many(activation=5), "unknown activation"),
    "train_many callback not callable": (train_many(callback=3), "callback must be callable"),
    # ---- effective_width
    "effective_width a string model": (lambda: initlab.effective_width("m", X), "effective_width needs model"),
    "effective_width a list": (lambda: initlab.effective_width(mlp(), [[1.0, 2.0]]), "needs X (a batch of inputs)"),
    "effective_width wrong width": (lambda: initlab.effective_width(mlp(in_features=3), X),
                                    "X has 2 features per point but the model's first layer 'fc1' takes 3"),
    "effective_width does not fit": (lambda: initlab.effective_width(
        nn.Sequential(nn.Unflatten(1, (1, 3)), nn.Linear(3, 4), nn.Linear(4, 1)), X), "the inputs do not fit the model"),
    "effective_width NaN": (lambda: initlab.effective_width(mlp(), with_nan(X)), "X holds NaN or inf"),
    "effective_width rtol nan": (lambda: initlab.effective_width(mlp(), X, rtol=NAN), "rtol"),
    "effective_width no hidden layer": (lambda: initlab.effective_width(nn.Linear(2, 1), X), "at least one hidden layer"),
    # ---- diagnose and lsuv
    "diagnose a string": (lambda: initlab.diagnose("m", X), "diagnose needs an nn.Module"),
    "diagnose wrong width": (lambda: initlab.diagnose(mlp(), torch.randn(5, 3)), "the inputs do not fit the model"),
    "diagnose NaN": (lambda: initlab.diagnose(mlp(), with_nan(X)), "NaN or inf"),
    "diagnose scheme param text": (lambda: initlab.diagnose(mlp(), X, scheme=("normal", {"std": "x"})), "got std='x'"),
    "lsuv a string": (lambda: initlab.lsuv("m", X), "lsuv needs an nn.Module"),
    "lsuv wrong width": (lambda: initlab.lsuv(mlp(), torch.randn(5, 3)), "the inputs do not fit the model"),
    "lsuv tol nan": (lambda: initlab.lsuv(mlp(), X, tol=NAN), "tol > 0"),
    "lsuv inputs numbers": (lambda: initlab.lsuv(mlp(), (1, 2)), "inputs must be a tensor"),
    # ---- datasets.make
    "make unknown name": (lambda: initlab.datasets.make("moon"), "Did you mean 'moons'"),
    "make name a list": (lambda: initlab.datasets.make(["moons"]), "unknown dataset"),
    "make n small": (lambda: initlab.datasets.make(n=3), "n >= 10"),
    "make n text": (lambda: initlab.datasets.make(n="100"), "n >= 10"),
    "make noise nan": (lambda: initlab.datasets.make(noise=NAN), "noise must be >= 0"),
    "make noise text": (lambda: initlab.datasets.make(noise="a"), "noise must be >= 0"),
    "make seed negative": (lambda: initlab.datasets.make(seed=-1), "seed must be a non-negative integer"),
    "make seed text": (lambda: initlab.datasets.make(seed="0"), "seed must be a non-negative integer"),
    "make test_fraction": (lambda: initlab.datasets.make(test_fraction=1.5), "test_fraction must lie in (0, 1)"),
    # ---- theory
    "mean_field sigma_w2 nan": (lambda: theory.mean_field("tanh", NAN), "sigma_w^2 must be a finite number"),
    "mean_field sigma_w2 negative": (lambda: theory.mean_field("tanh", -1.0), "sigma_w^2 must be > 0"),
    "mean_field sigma_b2 text": (lambda: theory.mean_field("tanh", 1.0, "a"), "sigma_b^2 must be a finite number"),
    "mean_field activation unknown": (lambda: theory.mean_field("tanhh", 1.0), "Did you mean 'tanh'"),
    "mean_field activation number": (lambda: theory.mean_field(5, 1.0), "activation must be a name"),
    "length_fixed_point inf": (lambda: theory.length_fixed_point("tanh", INF, 0.0), "sigma_w^2 must be a finite number"),
    "length_map q negative": (lambda: theory.length_map("tanh", 1.0, 0.0, -1.0), "q must be >= 0"),
    "chi_1 sigma_b2 negative": (lambda: theory.chi_1("relu", 2.0, -0.1), "sigma_b^2 must be >= 0"),
    "critical_sigma_w2 nan": (lambda: theory.critical_sigma_w2("tanh", NAN), "sigma_b^2 must be a finite number"),
    "critical_sigma_w2 lo above hi": (lambda: theory.critical_sigma_w2("tanh", 0.0, lo=2.0, hi=1.0), "0 < lo < hi"),
    "phase nan": (lambda: theory.phase(NAN), "chi_1 must be a number"),
    "phase_grid nan": (lambda: theory.phase_grid("tanh", [1.0, NAN], [0.0]), "sigma_w^2 must be a finite number"),
    "scheme_sigmas fan_in zero": (lambda: theory.scheme_sigmas("xavier_uniform", 0), "fan_in as an integer >= 1"),
    "scheme_sigmas scheme nan": (lambda: theory.scheme_sigmas(("normal", {"std": NAN}), 8), "got std=nan"),
    # ---- probability_grid and load
    "probability_grid a string": (lambda: initlab.probability_grid("m", X), "probability_grid needs model"),
    "probability_grid 3-D points": (lambda: initlab.probability_grid(mlp(3), torch.randn(5, 3)), "shape (n, 2)"),
    "load a missing store": (lambda tmp_path: initlab.load(tmp_path / "missing.db"), "no results store"),
    "load a file that is no store": (lambda tmp_path: initlab.load(_store_file(tmp_path)), "is not a SQLite database"),
}


def test_the_table_is_large():
    assert len(CASES) >= 50


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_initlab_error_naming_the_problem(name, tmp_path):
    call, fragment = CASES[name]
    with pytest.raises(InitlabError) as e:
        call(tmp_path) if call.__code__.co_varnames[:1] == ("tmp_path",) else call()
    message = str(e.value)
    assert fragment in message, message
    assert "\n" not in message and "Traceback" not in message


def test_the_same_data_problem_reads_the_same_from_every_entry_point():
    """One check, one message: train, train_many and the playground say the same thing."""
    from initlab.checks import check_training_data

    bad = data(y_train=DATA.y_train * 2)
    messages = set()
    for call in (train(d=bad), train_many(d=bad), lambda: check_training_data(bad, mlp(), "the playground")):
        with pytest.raises(InitlabError) as e:
            call()
        messages.add(str(e.value))
    assert len(messages) == 1, messages


def test_good_inputs_of_other_types_are_still_accepted():
    """numpy numbers and ints where floats are expected, None where None is the default."""
    initlab.initialize(mlp(), "normal", std=np.float64(0.1), mean=0, seed=0)
    initlab.initialize(mlp(), "he_normal", negative_slope=None, seed=0)
    d = initlab.datasets.make(n=np.int64(50), seed=np.int64(1))
    assert d.config["n"] == 50 and type(d.config["n"]) is int
    labels_as_bool = data(y_train=DATA.y_train.bool(), y_test=DATA.y_test.bool())
    r = initlab.train(mlp(), labels_as_bool, steps=2)
    assert not r.diverged


def test_the_data_check_leaves_the_model_and_the_global_rng_as_they_were():
    from initlab.checks import check_training_data

    model = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.ReLU(), nn.Linear(8, 1))
    model.train()
    model[1].eval()  # a frozen norm stays frozen
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = torch.get_rng_state()
    check_training_data(DATA, model)
    assert torch.equal(state, torch.get_rng_state())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert [m.training for m in model] == [True, False, True, True, True]
