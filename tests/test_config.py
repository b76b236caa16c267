"""The one run config: its serial forms and id, and one set of checks, so that a value is accepted or
refused the same way by every entry point (the library, a sweep file, sweep flags, the playground's
URL and `initlab train`'s flags)."""

import pytest
from click.testing import CliRunner

import initlab
from initlab import sweep as sw
from initlab.config import FieldError, RunConfig, check
from initlab.errors import InitlabError
from initlab.playground import settings as pg
from initlab.store import run_id


def test_round_trip_and_a_stable_id():
    c = RunConfig(hidden=[8, 8], activation="tanh", scheme="xavier_uniform", optimizer="adamw", weight_decay=0.05)
    d = c.to_dict()
    assert d["depth"] == 2 and d["width"] == 8 and "hidden" not in d
    assert RunConfig.from_dict(d) == c and RunConfig.from_dict(d).run_id == c.run_id
    assert c.replace(seed=1).run_id != c.run_id
    assert c.replace(device="cpu", track_every=5).run_id == c.run_id  # where it ran is not what it is
    uneven = RunConfig(hidden="16,8")
    assert uneven.to_dict()["hidden"] == [16, 8] and uneven.width is None
    assert RunConfig.from_dict({"dseed": 3, "batch": 16}).data_seed == 3  # the old names still read


def test_a_sweep_cell_is_a_run_config_with_the_same_id():
    sweep = sw.from_flags({"scheme": ["he_normal"], "depth": [2], "width": [4], "optimizer": ["rmsprop"]})
    (run,) = sweep.runs()
    assert RunConfig.from_dict(run).run_id == run_id(run)


BAD = [("lr", 0), ("lr", -1.0), ("steps", -1), ("n", 0), ("noise", -0.5), ("activation", "tahn"),
       ("optimizer", "adma"), ("batch_size", 0), ("seed", -2), ("data_seed", -1)]


@pytest.mark.parametrize("key, value", BAD)
def test_a_bad_value_is_refused_by_every_entry_point(tmp_path, key, value):
    with pytest.raises(FieldError) as library:
        check(key, value)
    reason = library.value.reason
    with pytest.raises(InitlabError, match=key):
        RunConfig(**{key: value})
    if key != "seed":  # a sweep's seeds are its own key, `seeds`
        toml = tmp_path / "s.toml"
        toml.write_text(f"{key} = {value!r}\n".replace("'", '"'))
        with pytest.raises(InitlabError) as from_file:
            sw.from_toml(toml)
        assert f"key '{key}'" in str(from_file.value) and reason in str(from_file.value)
        with pytest.raises(InitlabError) as from_flags:
            sw.from_flags({key: [value]})
        assert str(from_flags.value).startswith(f"--{key.replace('_', '-')}: ") and reason in str(from_flags.value)
    with pytest.raises(InitlabError, match=key):
        pg.parse([(key, str(value))])
    from initlab.cli import main

    base = {"--steps": "1", "--n": "40", "--out": str(tmp_path / "o"), "--no-progress": None}
    base[f"--{key.replace('_', '-')}"] = str(value)
    args = [a for k, v in base.items() for a in (k, v) if a is not None]
    r = CliRunner().invoke(main, ["train", *args])
    assert r.exit_code != 0 and "Traceback" not in r.output and reason in r.output, r.output


GOOD = [("optimizer", "rmsprop"), ("optimizer", "adamw"), ("batch_size", 16), ("activation", "selu")]


@pytest.mark.parametrize("key, value", GOOD)
def test_a_good_value_is_accepted_by_every_entry_point(key, value):
    assert RunConfig(**{key: value}).to_dict()[key] == value
    assert sw.from_flags({key: [value]}).axes[key] == [value]
    assert getattr(pg.parse([(key, str(value))]), key) == value


def test_weight_decay_belongs_to_the_optimizers_that_take_it():
    assert RunConfig(optimizer="adamw", weight_decay=0.1).optimizer_params() == {"weight_decay": 0.1}
    for attempt in (lambda: RunConfig(optimizer="sgd", weight_decay=0.1),
                    lambda: sw.from_flags({"optimizer": ["sgd"], "weight_decay": [0.1]}),
                    lambda: pg.parse([("optimizer", "sgd"), ("weight_decay", "0.1")]),
                    lambda: initlab.train(initlab.mlp(2, [4], 1), initlab.datasets.make(n=40), steps=1,
                                          weight_decay=0.1)):
        with pytest.raises(InitlabError, match="optimizer 'sgd' takes no weight_decay"):
            attempt()


def test_bias_std_is_accepted_by_the_library_the_sweep_file_and_the_sweep_flags(tmp_path):
    spec = {"name": "variance_scaling", "params": {"bias_std": 0.1}}
    assert RunConfig(scheme=spec).scheme["params"]["bias_std"] == 0.1
    toml = tmp_path / "s.toml"
    toml.write_text('[[scheme]]\nname = "variance_scaling"\nbias_std = 0.1\n')
    assert sw.from_toml(toml).schemes[0]["params"]["bias_std"] == 0.1
    from initlab.cli import main

    r = CliRunner().invoke(main, ["sweep", "--scheme", "variance_scaling", "--param", "bias_std=0.1", "--dry-run",
                                  "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
