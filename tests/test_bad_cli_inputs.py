"""Bad input through the command line: exit code 2 (or 1), the problem named, never a traceback.

The matrix is built from the commands' own options, so a new flag joins it: every int or float option
gets a non-number (and a float NaN), every option with a range a value outside it, every choice a wrong
choice, every output path places it cannot be written (under a file, the wrong kind, a read-only
folder) and every path argument one that is not there. A hand-written list adds names, numbers the
library checks, files and combinations of flags. Each case fails before any work: where a bad value
slipped through, the base arguments keep the work tiny (one step, 50 points, width 2).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import click
import pytest
import torch
from click.testing import CliRunner

from initlab.cli import main

#: Arguments that make each command's work the smallest, were a bad value to slip through.
BASE = {
    "init": ["--depth", "1", "--width", "2"],
    "demo": ["--quick", "--no-progress"],
    "train": ["--steps", "1", "--n", "50", "--depth", "1", "--width", "2", "--no-progress"],
    "diagnose": ["--depth", "1", "--width", "2", "--input-batch", "4"],
    "theory": [],
    "report": ["{store}"],
    "sweep": ["--steps", "1", "--n", "50", "--depth", "1", "--width", "2", "--no-progress"],
    "results": ["{store}"],
    "playground": ["--no-open"],
    "schemes": [],
    "audit": ["--model", "mymodels:gpt", "--recipe", "gpt2"],
    "signal": ["--depth", "1", "--width", "2", "--inputs", "2"],
    "watch-demo": ["--quick"],
}


def _flag(param: click.Parameter) -> str:
    return max(param.opts, key=len)


def _out_of_range(t) -> list:
    """Values just outside a click IntRange/FloatRange (or our Number), below and above."""
    values = []
    step = 1 if isinstance(t, click.IntRange) else 0.5
    if t.min is not None:
        values.append(t.min if t.min_open else t.min - step)
    if t.max is not None:
        values.append(t.max if t.max_open else t.max + step)
    return [str(v) for v in values]


def generated_cases() -> list:
    """``(id, args, messages)`` for every option of every command; ``{tmp}`` is filled in by the test."""
    cases = []
    for name, command in sorted(main.commands.items()):
        base = BASE[name]
        cases.append((f"{name} unknown option", [name, *base, "--no-such-flag"], ["--no-such-flag"]))
        for param in command.params:
            t = param.type
            if isinstance(param, click.Argument):
                if isinstance(t, click.Path):  # an input that is not there
                    cases.append((f"{name} {param.name} missing", [name, "{tmp}/not-there"], ["not-there"]))
                continue
            if getattr(param, "is_flag", False) or param.name == "help":
                continue
            flag = _flag(param)
            key = f"{name} {flag}"
            names = [flag]
            if isinstance(t, (click.types.IntParamType, click.types.FloatParamType)):
                cases.append((f"{key} not a number", [name, *base, flag, "abc"], [*names, "abc"]))
            if isinstance(t, click.types.FloatParamType):
                # NaN passes float(); the CLI or the library names the option (as --lr or lr)
                bare = flag.lstrip("-")
                cases.append((f"{key} nan", [name, *base, flag, "nan"], ["nan", (bare, bare.replace("-", "_"))]))
            if isinstance(t, click.types._NumberRangeBase):
                for value in _out_of_range(t):
                    cases.append((f"{key} out of range {value}", [name, *base, flag, value], [*names, value]))
            if isinstance(t, click.Choice):
                cases.append((f"{key} wrong choice", [name, *base, flag, "nosuch"], [*names, "'nosuch'"]))
            if isinstance(t, click.Path):
                folder = not t.file_okay
                leaf = "sub" if folder else "x.out"
                cases.append((f"{key} under a file", [name, *base, flag, f"{{tmp}}/afile/{leaf}"], ["afile"]))
                wrong = "{tmp}/afile" if folder else "{tmp}/adir"
                cases.append((f"{key} wrong kind", [name, *base, flag, wrong], [wrong.split("/")[-1]]))
                cases.append((f"{key} in a read-only folder", [name, *base, flag, f"{{tmp}}/ro/new/{leaf}"],
                              ["read-only"]))
                if folder:
                    cases.append((f"{key} a read-only folder", [name, *base, flag, "{tmp}/ro"], ["read-only"]))
    return cases


NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: --device cuda is not bad input")

#: Names, numbers the library checks, files and combinations: ``(args, message)`` or pytest.param.
HAND = [
    # init: names, pairs and numbers of schemes
    (["init", "--scheme", "xavier_unifrom"], "Did you mean 'xavier_uniform'?"),
    (["init", "--scheme", "normal", "--param", "std=-1"], "std >= 0"),
    (["init", "--scheme", "normal", "--param", "std"], "KEY=VALUE"),
    (["init", "--scheme", "normal", "--param", "std=abc"], "std"),
    (["init", "--scheme", "normal", "--param", "std=inf"], "std"),
    (["init", "--scheme", "constant", "--param", "value=nan"], "value"),
    (["init", "--scheme", "normal", "--param", "foo=1"], "'foo'"),
    (["init", "--activation", "relux"], "Did you mean 'relu'?"),
    (["init", "--hidden", "a,b"], "hidden widths"),  # the old name of --depth/--width, hidden and checked
    (["init", "--hidden", "0"], "width >= 1"),
    (["init", "--hidden", "8x2", "--width", "4"], "--hidden is the old form of --depth and --width"),
    (["init", "--override", "out"], "PATTERN=SCHEME"),
    (["init", "--override", "out=nosuch"], "unknown scheme 'nosuch'"),
    (["init", "extra"], "unexpected extra argument"),
    # train: names and numbers the library checks; a flag of another command
    (["train", *BASE["train"], "--dataset", "moon"], "Did you mean 'moons'?"),
    (["train", *BASE["train"], "--optimizer", "adma"], "Did you mean 'adam'?"),
    (["train", *BASE["train"], "--dtype", "float16"], "float16"),
    (["train", *BASE["train"], "--activation", "relux"], "Did you mean 'relu'?"),
    (["train", *BASE["train"], "--scheme", "nosuch"], "unknown scheme 'nosuch'"),
    (["train", *BASE["train"], "--scheme", "normal", "--param", "std=-1"], "std >= 0"),
    (["train", "--steps", "1", "--hidden", "4x0"], "width >= 1"),
    (["train", *BASE["train"], "--hidden", "4x2"], "give --depth and --width without --hidden"),
    (["train", *BASE["train"], "--eval-every", "0"], "eval_every"),
    (["train", *BASE["train"], "--n", "0"], "n >= 10"),
    (["train", *BASE["train"], "--steps", "-1"], "steps"),
    (["train", *BASE["train"], "--lr", "-1"], "lr"),
    (["train", *BASE["train"], "--lr", "0"], "lr"),
    (["train", *BASE["train"], "--noise", "-1"], "noise"),
    (["train", *BASE["train"], "--batch-size", "0"], "batch_size"),
    (["train", *BASE["train"], "--override", "out=zeros"], "--override is for `initlab init`"),
    pytest.param(["train", *BASE["train"], "--device", "cuda"], "no CUDA GPU", marks=NO_GPU),
    pytest.param(["demo", *BASE["demo"], "--device", "cuda"], "no CUDA GPU", marks=NO_GPU),
    # diagnose: combinations that would drop a flag, token inputs, models by import path
    (["diagnose", "--model", "m:f", "--input-shape", "3", "--hidden", "8"], "--hidden is for the built-in MLP"),
    (["diagnose", "--model", "m:f", "--input-shape", "3", "--depth", "8"], "--depth is for the built-in MLP"),
    (["diagnose", "--model", "m:f", "--input-shape", "3", "--width", "8"], "--width is for the built-in MLP"),
    (["diagnose", "--model", "m:f", "--input-shape", "3", "--activation", "tanh"], "--activation is for the built-in"),
    (["diagnose", "--model", "m:f", "--input-shape", "3", "--in-features", "3"], "--in-features is for the built-in"),
    (["diagnose", "--model", "m:f", "--input-shape", "3", "--hidden", "8", "--activation", "tanh"],
     "--hidden and --activation are for the built-in MLP"),
    (["diagnose", *BASE["diagnose"], "--input-shape", "3"], "--input-shape is for --model"),
    (["diagnose", *BASE["diagnose"], "--in-features", "0"], "--in-features"),
    (["diagnose", *BASE["diagnose"], "--scheme", ","], "--scheme names schemes"),
    (["diagnose", *BASE["diagnose"], "--scheme", "he_normall"], "Did you mean 'he_normal'?"),
    (["diagnose", *BASE["diagnose"], "--activation", "relux"], "Did you mean 'relu'?"),
    (["diagnose", "--hidden", "0"], "width >= 1"),
    (["diagnose", *BASE["diagnose"], "--batch", "8"], "--batch is the old name of --input-batch"),
    (["diagnose", *BASE["diagnose"], "--input-dtype", "long"], "--input-dtype long needs --vocab"),
    (["diagnose", *BASE["diagnose"], "--vocab", "50"], "--vocab is for token ids"),
    (["diagnose", *BASE["diagnose"], "--input-dtype", "long", "--vocab", "10"], "the built-in MLP takes float"),
    (["diagnose", "--model", "m:f"], "--model needs --input-shape"),
    (["diagnose", "--model", "m:f", "--input-shape", "a,b"], "--input-shape is like"),
    (["diagnose", "--model", "m:f", "--input-shape", "0"], "sizes of at least 1"),
    (["diagnose", "--model", "nocolon", "--input-shape", "3"], "package.module:factory"),
    (["diagnose", "--model", "nosuchmodule_xyz:f", "--input-shape", "3"], "cannot import 'nosuchmodule_xyz'"),
    (["diagnose", "--model", "os:getcwd", "--input-shape", "3"], "not an nn.Module"),
    # theory
    (["theory", "--width", "8"], "--width is the layer width of the --scheme points"),
    (["theory", "--scheme", ","], "--scheme names schemes"),
    (["theory", "--scheme", "nosuch"], "unknown scheme 'nosuch'"),
    (["theory", "--scheme", "lsuv"], "needs data"),
    (["theory", "--activation", "tahn"], "Did you mean 'tanh'?"),
    (["theory", "--sigma-w2", "inf"], "'inf' is not a finite number"),
    (["theory", "--sigma-b2", "-inf"], "--sigma-b2"),
    # report
    (["report", "{tmp}/afile"], "not something initlab can report on"),
    (["report", "{store}", "--lang", "xx"], "unknown language 'xx'"),
    (["report", "{store}", "--lang", "he"], "--lang he is for the demo's report"),
    # sweep: combinations, flag values, files
    (["sweep", *BASE["sweep"], "--size", "small"], "--size is the grid of a --preset"),
    (["sweep", *BASE["sweep"], "--address", "auto"], "--address is for --executor ray"),
    (["sweep", "--address", "auto", "--dry-run"], "--address is for --executor ray"),
    (["sweep", "--preset", "trainability", "--depth", "3"], "--preset is a whole sweep"),
    (["sweep", "{tmp}/good.toml", "--depth", "2"], "give a sweep file or axis flags, not both"),
    (["sweep", "{tmp}/bad.toml"], "not valid TOML"),
    (["sweep", "{tmp}/unknown-key.toml"], "unknown-key.toml:2"),
    (["sweep", "{tmp}/adir"], "adir"),
    (["sweep", "{tmp}/binary.toml"], "is not UTF-8 text"),
    (["sweep", *BASE["sweep"], "--steps", "abc"], "--steps"),
    (["sweep", *BASE["sweep"], "--depth", "0"], "--depth"),
    (["sweep", *BASE["sweep"], "--width", "0"], "--width"),
    (["sweep", *BASE["sweep"], "--seeds", "0"], "--seeds"),
    (["sweep", *BASE["sweep"], "--seeds", "1,-1"], "--seeds"),
    (["sweep", *BASE["sweep"], "--data-seed", "-1"], "--data-seed"),
    (["sweep", *BASE["sweep"], "--noise", "abc"], "--noise"),
    (["sweep", *BASE["sweep"], "--eval-every", "0"], "--eval-every"),
    (["sweep", *BASE["sweep"], "--lr", "log:1:2"], "log:LOW:HIGH:COUNT"),
    (["sweep", *BASE["sweep"], "--lr", "0"], "--lr"),
    (["sweep", *BASE["sweep"], "--n", "5"], "n >= 10"),
    (["sweep", *BASE["sweep"], "--param", "foo=1"], "none of the schemes"),
    (["sweep", *BASE["sweep"], "--scheme", "default", "--param", "bias=1"], "none of the schemes default takes"),
    (["sweep", *BASE["sweep"], "--scheme", "normal", "--param", "std=-1"], "--param std: scheme 'normal' needs"),
    (["sweep", *BASE["sweep"], "--param", "std"], "KEY=V1,V2"),
    (["sweep", *BASE["sweep"], "--scheme", "nosuch"], "unknown scheme 'nosuch'"),
    (["sweep", *BASE["sweep"], "--activation", "relux"], "Did you mean 'relu'?"),
    (["sweep", *BASE["sweep"], "--dataset", "moon"], "Did you mean 'moons'?"),
    (["sweep", *BASE["sweep"], "--optimizer", "adma"], "Did you mean 'adam'?"),
    (["sweep", *BASE["sweep"], "--dtype", "float16"], "float16"),
    pytest.param(["sweep", *BASE["sweep"], "--device", "cuda"], "CUDA", marks=NO_GPU),
    # results
    (["results", "{tmp}/nosuch.db"], "no results store"),
    (["results", "{store}", "--by", "foo"], "no column 'foo'"),
    (["results", "{store}", "--by", ","], "--by"),
    (["results", "{store}", "--metric", "accuracy"], "'accuracy' is not one of"),
    (["results", "{store}", "--threshold", "90"], "0<=x<=1"),
    # playground (the server never starts: see the fixture)
    (["playground", "--no-open", "--settings", "depth=abc"], "depth must be an integer"),
    (["playground", "--no-open", "--settings", "depth=99"], "depth must lie between"),
    (["playground", "--no-open", "--settings", "foo=1"], "unknown setting 'foo'"),
    (["playground", "--no-open", "--settings", "scheme=nosuch"], "unknown scheme 'nosuch'"),
    (["playground", "--no-open", "--host", "nosuch.invalid"], "--host 'nosuch.invalid'"),
    (["playground", "--no-open", "--host", "192.0.2.1"], "not an address of this machine"),
    # a command that is not there
    (["trian"], "No such command 'trian'"),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A tiny results store (one run) for `results` and `report`."""
    out = tmp_path_factory.mktemp("store")
    made = CliRunner().invoke(main, ["sweep", *BASE["sweep"], "--seeds", "1", "--out", str(out)],
                              catch_exceptions=False)
    assert made.exit_code == 0, made.output
    return out / "runs.db"


@pytest.fixture()
def place(tmp_path, store, monkeypatch):
    """A scratch folder with a file, a folder and a read-only folder; the playground never serves."""
    (tmp_path / "afile").write_text("a file, not a folder\n")
    (tmp_path / "adir").mkdir()
    (tmp_path / "good.toml").write_text('scheme = ["default"]\ndepth = 1\nsteps = 1\n')
    (tmp_path / "bad.toml").write_text("depth = [1,\n")
    (tmp_path / "unknown-key.toml").write_text('scheme = ["default"]\ndepht = 1\n')
    (tmp_path / "binary.toml").write_bytes(bytes(range(128, 256)))
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    # root writes anywhere: also say, as the kernel would to anyone else, that `ro` is not writable
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: False if Path(p) == ro and mode & os.W_OK
                        else real_access(p, mode, *a, **k))
    import initlab.playground

    def no_server(*_a, **_k):
        raise AssertionError("bad input reached the server")
    monkeypatch.setattr(initlab.playground, "serve", no_server)
    monkeypatch.chdir(tmp_path)  # whatever slips through writes here
    yield {"tmp": str(tmp_path), "store": str(store)}
    ro.chmod(stat.S_IRWXU)


def _fill(args, place):
    return [a.format(**place) for a in args]


def _check(args, messages, place):
    result = CliRunner().invoke(main, _fill(args, place))
    shown = result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}")
    assert result.exit_code in (1, 2), shown
    assert "Traceback" not in shown
    last = shown.strip().splitlines()[-1]
    assert last.startswith("Error:"), shown  # the problem is said last, in one line
    for message in messages:
        alternatives = message if isinstance(message, tuple) else (message,)
        assert any(_fill([m], place)[0] in last for m in alternatives), (message, last)


GENERATED = generated_cases()


@pytest.mark.parametrize("args, messages", [c[1:] for c in GENERATED], ids=[c[0] for c in GENERATED])
def test_every_option_refuses_bad_values(args, messages, place):
    _check(args, messages, place)


def _hand_id(case) -> str:
    args = case.values[0] if hasattr(case, "values") else case[0]
    return " ".join(a.replace("{tmp}/", "").replace("{store}", "STORE") for a in args)


@pytest.mark.parametrize("args, message", HAND, ids=[_hand_id(c) for c in HAND])
def test_names_numbers_files_and_combinations(args, message, place):
    _check(args, [message], place)


def test_the_matrix_is_large_and_covers_every_command():
    assert len(GENERATED) + len(HAND) >= 100
    commands = {args[0] for _, args, _ in GENERATED} | {(p.values if hasattr(p, "values") else p)[0][0]
                                                       for p in HAND}
    assert set(main.commands) <= commands
    kinds = " ".join(c[0] for c in GENERATED)
    for kind in ("not a number", "nan", "out of range", "wrong choice", "under a file", "read-only", "missing"):
        assert kind in kinds, kind


def test_a_new_option_joins_the_matrix(monkeypatch):
    """The matrix reads the commands' options: a new int option gets its cases without a new line here."""
    command = main.commands["theory"]
    extra = click.Option(["--new-count"], type=click.IntRange(min=3))
    monkeypatch.setattr(command, "params", [*command.params, extra])
    ids = [c[0] for c in generated_cases()]
    assert "theory --new-count not a number" in ids and "theory --new-count out of range 2" in ids


@pytest.mark.parametrize("args", [
    ["init", "--scheme", "gpt3"],
    ["diagnose", "--model", "onelayer:linear", "--input-shape", "2", "--input-batch", "4", "--scheme", "gpt3"],
    ["audit", "--model", "onelayer:linear", "--recipe", "gpt3"],
], ids=["init --scheme", "diagnose --scheme", "audit --recipe"])
def test_an_unknown_name_where_a_recipe_is_taken_lists_the_schemes_and_the_recipes(args, place):
    factory = "import torch.nn as nn\ndef linear():\n    return nn.Linear(2, 2)\n"
    (Path(place["tmp"]) / "onelayer.py").write_text(factory)
    _check(args, ["unknown scheme 'gpt3'", "Did you mean 'gpt2'?", "xavier_uniform", "orthogonal", "fixup", "deepnet",
                  "mimetic"], place)


def test_a_recipe_where_only_a_scheme_is_taken_says_it_is_a_recipe(place):
    _check(["init", *BASE["init"], "--override", "out=gpt2"],
           ["'gpt2' is a recipe", "not a per-tensor scheme", "xavier_uniform"], place)
