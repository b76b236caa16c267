import json
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
import torch
from click.testing import CliRunner

from initlab.cli import AliasOption, main


@pytest.fixture()
def run():
    runner = CliRunner()
    return lambda *args: runner.invoke(main, list(args), catch_exceptions=False)


def test_every_command_has_help(run):
    for cmd in main.commands:
        result = run(cmd, "--help")
        assert result.exit_code == 0 and "Usage:" in result.output
        assert main.commands[cmd].help


def test_every_help_ends_with_one_or_two_examples_of_that_command(run):
    for cmd in main.commands:
        text = run(cmd, "--help").output.rstrip()
        head, _, examples = text.rpartition("Examples:")
        lines = examples.strip().splitlines()
        assert head and 1 <= len(lines) <= 2, (cmd, examples)
        assert all(line.strip().startswith(f"initlab {cmd}") for line in lines), (cmd, lines)


def test_python_dash_m_runs_the_same_cli():
    out = subprocess.run([sys.executable, "-m", "initlab", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "demo" in out.stdout


def test_schemes_prints_each_with_its_formula(run):
    result = run("schemes")
    assert result.exit_code == 0
    assert "xavier_uniform" in result.output and "sqrt(6)/sqrt(K_in+K_out)" in result.output
    rows = json.loads(run("schemes", "--json").output)
    assert {r["name"] for r in rows} >= {"constant", "default", "he_normal", "orthogonal"}


def test_init_prints_the_manifest(run):
    result = run("init", "--scheme", "normal", "--param", "std=0.02", "--depth", "2", "--width", "8", "--json")
    assert result.exit_code == 0
    doc = json.loads(result.output)
    assert doc["scheme"] == {"name": "normal", "params": {"std": 0.02}}
    assert doc["entries"][0]["std"] == 0.02
    table = run("init", "--scheme", "xavier_uniform", "--override", "out=zeros").output
    assert "fc1.weight" in table and "zeros" in table


@pytest.mark.parametrize("args, message", [
    (["init", "--scheme", "xavier_unifrom"], "Did you mean 'xavier_uniform'?"),
    (["init", "--scheme", "normal", "--param", "std=-1"], "std >= 0"),
    (["init", "--scheme", "normal", "--param", "std"], "KEY=VALUE"),
    (["init", "--activation", "relux"], "Did you mean 'relu'?"),
    (["init", "--hidden", "a,b"], "hidden widths"),  # the old name: still checked
    (["train", "--dataset", "moon", "--steps", "1"], "Did you mean 'moons'?"),
    (["train", "--optimizer", "adma", "--steps", "1", "--n", "50"], "Did you mean 'adam'?"),
])
def test_bad_input_is_one_line_and_exit_code_2(run, args, message, tmp_path):
    result = run(*args, "--out", str(tmp_path / "o")) if args[0] == "train" else run(*args)
    assert result.exit_code == 2
    assert message in result.output
    assert result.output.strip().count("\n") == 0 and "Traceback" not in result.output


def test_demo_quick_writes_figures_results_and_page(run, tmp_path):
    out = tmp_path / "demo"
    result = run("demo", "--quick", "--json", "--no-progress", "--out", str(out))
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["results"]
    assert [r["scheme"] for r in rows] == ["constant(value=0.05)", "default", "xavier_uniform", "he_normal",
                                          "normal(std=0.01)", "normal(std=3)"]
    for r in rows:
        assert {"scheme", "train_accuracy", "test_accuracy", "final_loss", "steps_to_90", "effective_width",
                "diverged"} <= set(r)
    assert rows[0]["effective_width"] == [1, 1, 1, 1]
    assert rows[-1]["diverged"] is True
    for name in ("contours.png", "contours.svg", "curves.png", "symmetry.png", "results.json", "index.html"):
        assert (out / name).stat().st_size > 0, name
    page = (out / "index.html").read_text()
    assert "Symmetry" in page and "data:image/png;base64," in page and "<script" not in page
    stored = json.loads((out / "results.json").read_text())
    assert stored["results"][2]["test_accuracy"] == rows[2]["test_accuracy"]


def test_train_writes_the_same_artifacts_for_one_model(run, tmp_path):
    out = tmp_path / "t"
    result = run("train", "--scheme", "xavier_uniform", "--depth", "2", "--width", "16", "--activation", "tanh",
                 "--steps", "100", "--n", "300", "--no-progress", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "xavier_uniform" in result.output
    for name in ("contours.png", "curves.png", "results.json", "index.html"):
        assert (out / name).is_file()


def test_diagnose_flags_xavier_vanishing_and_he_ok(run, tmp_path):
    result = run("diagnose", "--depth", "30", "--width", "256", "--activation", "relu",
                 "--scheme", "xavier_uniform,he_normal",
                 "--input-batch", "256", "--json", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    xavier, he = json.loads(result.output)["diagnoses"]
    assert xavier["verdict"]["forward"]["status"] == "vanishing" and "use he_normal" in xavier["verdict"]["message"]
    assert he["verdict"]["summary"] == "ok"
    assert (tmp_path / "diagnose.png").stat().st_size > 0


def test_diagnose_a_user_model_by_import_path(run, tmp_path, monkeypatch):
    (tmp_path / "mymodels.py").write_text(
        "import torch.nn as nn\n"
        "def cnn():\n    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 2))\n"
        "def empty():\n    return nn.Sequential(nn.ReLU())\n")
    monkeypatch.chdir(tmp_path)
    ok = run("diagnose", "--model", "mymodels:cnn", "--input-shape", "3,8,8", "--scheme", "he_normal,lsuv")
    assert ok.exit_code == 0, ok.output
    assert "Conv2d" in ok.output and "lsuv" in ok.output
    for args, message in [(["--model", "nosuchmodule:f", "--input-shape", "3"], "cannot import 'nosuchmodule'"),
                          (["--model", "mymodels:cnn", "--input-shape", "3,9"], "do not fit the model"),
                          (["--model", "mymodels:empty", "--input-shape", "4"], "no parameters"),
                          (["--model", "mymodels:cnn"], "--input-shape"),
                          (["--scheme", "he_normall"], "Did you mean 'he_normal'?")]:
        bad = run("diagnose", *args)
        assert bad.exit_code == 2 and message in bad.output, (args, bad.output)
        assert bad.output.strip().count("\n") == 0


TOKEN_MODELS = (
    "import torch.nn as nn\n"
    "class LSTMClassifier(nn.Module):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.embedding = nn.Embedding(50, 8)\n"
    "        self.lstm = nn.LSTM(8, 16, num_layers=2, batch_first=True)\n"
    "        self.head = nn.Linear(16, 3)\n"
    "    def forward(self, ids):\n"
    "        out, _ = self.lstm(self.embedding(ids))\n"
    "        return self.head(out[:, -1])\n"
    "def lstm():\n    return LSTMClassifier()\n"
    "def transformer():\n"
    "    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)\n"
    "    return nn.Sequential(nn.Embedding(50, 16), nn.TransformerEncoder(layer, 2, enable_nested_tensor=False))\n")


def test_diagnose_a_token_model_with_long_inputs(run, tmp_path, monkeypatch):
    (tmp_path / "tokenmodels.py").write_text(TOKEN_MODELS)
    monkeypatch.chdir(tmp_path)
    for factory in ("lstm", "transformer"):
        ok = run("diagnose", "--model", f"tokenmodels:{factory}", "--input-shape", "12", "--input-dtype", "long",
                 "--vocab", "50", "--input-batch", "8", "--scheme", "xavier_uniform", "--json")
        assert ok.exit_code == 0, ok.output
        (doc,) = json.loads(ok.output)["diagnoses"]
        kinds = {r["kind"] for r in doc["layers"]}
        assert ("LSTM" in kinds) if factory == "lstm" else ("MultiheadAttention" in kinds), kinds
        assert doc["verdict"]["summary"]


def test_long_inputs_are_token_ids_below_vocab_from_the_seed(run, tmp_path, monkeypatch):
    """The batch the model sees: integer ids in [0, vocab), the same for the same --seed."""
    (tmp_path / "spy.py").write_text(
        "import torch, torch.nn as nn\n"
        "SEEN = []\n"
        "class Spy(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.embedding = nn.Embedding(7, 4)\n"
        "        self.fc = nn.Linear(4, 2)\n"
        "    def forward(self, ids):\n"
        "        SEEN.append(ids.clone())\n"
        "        return self.fc(self.embedding(ids))\n"
        "def spy():\n    return Spy()\n")
    monkeypatch.chdir(tmp_path)
    import importlib
    seen = []
    for seed in ("0", "0", "1"):
        result = run("diagnose", "--model", "spy:spy", "--input-shape", "5,3", "--input-dtype", "long", "--vocab", "7",
                     "--input-batch", "64", "--seed", seed, "--json")
        assert result.exit_code == 0, result.output
        spy = importlib.import_module("spy")
        seen.append(spy.SEEN[-1])
    ids = seen[0]
    assert ids.dtype == torch.long and ids.shape == (64, 5, 3)
    assert int(ids.min()) >= 0 and int(ids.max()) <= 6 and len(ids.unique()) == 7
    assert torch.equal(seen[0], seen[1]) and not torch.equal(seen[0], seen[2])


@pytest.mark.parametrize("args, message", [
    (["--input-dtype", "long"], "--input-dtype long needs --vocab"),
    (["--input-dtype", "long", "--vocab", "0"], "'--vocab': 0 is not in the range x>=1"),
    (["--input-dtype", "long", "--vocab", "-3"], "'--vocab': -3 is not in the range x>=1"),
    (["--vocab", "50"], "--vocab is for token ids"),
    (["--input-dtype", "float", "--vocab", "50"], "--vocab is for token ids"),
    (["--input-dtype", "long", "--vocab", "500"], "past the end of Embedding 'embedding' (50 rows); give --vocab 50"),
])
def test_diagnose_token_input_errors_are_one_line(run, tmp_path, monkeypatch, args, message):
    (tmp_path / "tokenmodels.py").write_text(TOKEN_MODELS)
    monkeypatch.chdir(tmp_path)
    bad = run("diagnose", "--model", "tokenmodels:lstm", "--input-shape", "12", "--input-batch", "4", *args)
    assert bad.exit_code == 2 and message in bad.output, (args, bad.output)
    assert [line for line in bad.output.splitlines() if message in line][0].startswith("Error:")
    assert "Traceback" not in bad.output


GPT_MODELS = (
    "import torch, torch.nn as nn\n"
    "from gptlike import MLP, CausalSelfAttention\n"
    "class FeedForward(MLP):\n"
    "    def forward(self, x):\n"
    "        return self.c_proj(nn.functional.gelu(self.c_fc(x)))\n"
    "class Block(nn.Module):\n"
    "    def __init__(self, d):\n"
    "        super().__init__()\n"
    "        self.ln_1, self.attn, self.ln_2 = nn.LayerNorm(d), CausalSelfAttention(d), nn.LayerNorm(d)\n"
    "        self.mlp = FeedForward(d)\n"
    "    def forward(self, x):\n"
    "        x = x + self.attn(self.ln_1(x))\n"
    "        return x + self.mlp(self.ln_2(x))\n"
    "class GPT(nn.Module):\n"
    "    def __init__(self, vocab=40, ctx=16, d=32, n_layer=4):\n"
    "        super().__init__()\n"
    "        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(ctx, d)\n"
    "        self.h = nn.ModuleList(Block(d) for _ in range(n_layer))\n"
    "        self.ln_f, self.head = nn.LayerNorm(d), nn.Linear(d, vocab, bias=False)\n"
    "    def forward(self, ids):\n"
    "        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[-1]))\n"
    "        for block in self.h:\n"
    "            x = block(x)\n"
    "        return self.head(self.ln_f(x))\n"
    "def gpt():\n    return GPT()\n")


@pytest.fixture()
def gpt_models(tmp_path, monkeypatch):
    """``gptmodels:gpt``: GPT-2's layout (tests/gptlike.py) with a forward pass, 4 blocks, a vocabulary of 40
    and 16 positions."""
    (tmp_path / "gptmodels.py").write_text(GPT_MODELS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # gptlike
    monkeypatch.delitem(sys.modules, "gptmodels", raising=False)
    return "gptmodels:gpt"


def test_diagnose_takes_a_recipe_as_a_scheme_and_finds_its_depth(run, gpt_models):
    args = ["diagnose", "--model", gpt_models, "--input-shape", "8", "--input-dtype", "long", "--vocab", "40",
            "--input-batch", "8"]
    shown = run(*args, "--scheme", "gpt2")
    assert shown.exit_code == 0, shown.output
    assert "gpt2" in shown.output and "verdict: ok" in shown.output
    result = run(*args, "--scheme", "xavier_uniform,gpt2", "--json")
    assert result.exit_code == 0, result.output
    xavier, gpt2 = json.loads(result.output)["diagnoses"]
    assert gpt2["scheme"] == "gpt2" and gpt2["verdict"]["summary"]
    # the recipe was drawn: its residual outputs (std 0.02 / sqrt(2 * 4 layers) = 0.0071) give outputs far
    # smaller than Xavier's (std sqrt(2 / (32 + 32)) = 0.18) on the same inputs
    std = {d["scheme"]: {r["name"]: r["preact_std"] for r in d["layers"]} for d in (xavier, gpt2)}
    for name in ("h.0.attn.c_proj", "h.3.attn.c_proj", "h.3.mlp.c_proj"):
        assert std["gpt2"][name] < std["xavier_uniform"][name] / 5, name


@pytest.mark.parametrize("shape, vocab, message", [
    ("99", "40", "the sequence of 99 tokens is longer than Embedding 'wpe' (16 positions); give --input-shape 16"),
    ("8", "1000", "token ids go up to 999 (--vocab 1000), past the end of Embedding 'wte' (40 rows); give --vocab 40"),
])
def test_an_index_past_an_embedding_names_the_table_and_the_flag_that_overflow_it(run, gpt_models, shape, vocab,
                                                                                 message):
    bad = run("diagnose", "--model", gpt_models, "--input-shape", shape, "--input-dtype", "long", "--vocab", vocab,
              "--input-batch", "4")
    assert bad.exit_code == 2 and message in bad.output, bad.output
    assert bad.output.strip().count("\n") == 0 and bad.output.startswith("Error:")
    other = "--vocab" if "sequence" in message else "--input-shape"
    assert f"give {other}" not in bad.output  # the flag that is right is not blamed


def test_diagnose_input_dtype_errors_outside_token_models(run):
    mlp = run("diagnose", "--depth", "2", "--width", "8", "--input-dtype", "long", "--vocab", "10")
    assert mlp.exit_code == 2 and "the built-in MLP takes float inputs" in mlp.output
    assert mlp.output.strip().count("\n") == 0
    unknown = run("diagnose", "--depth", "2", "--width", "8", "--input-dtype", "int")
    assert unknown.exit_code == 2 and "'int' is not one of 'float', 'long'" in unknown.output
    assert "Traceback" not in unknown.output
    shape = run("diagnose", "--model", "x:y", "--input-shape", "0")
    assert shape.exit_code == 2 and "sizes of at least 1" in shape.output


def test_the_readme_diagnose_commands_give_the_readme_verdicts(run, monkeypatch):
    """The README's CNN is told to use He as built and is ok with He; its transformer LM is ok."""
    from pathlib import Path

    monkeypatch.chdir(Path(__file__).parent.parent / "examples")
    monkeypatch.delitem(sys.modules, "mymodels", raising=False)  # an earlier test's mymodels.py, not the README's
    cnn = run("diagnose", "--model", "mymodels:make_cnn", "--input-shape", "3,16,16", "--input-batch", "64",
              "--scheme", "default,he_normal", "--json")
    assert cnn.exit_code == 0, cnn.output
    built, he = (d["verdict"] for d in json.loads(cnn.output)["diagnoses"])
    assert "vanishing (forward)" in built["labels"] and built["suggestion"] == "he_normal"
    assert he["summary"] == "ok"
    lm = run("diagnose", "--model", "mymodels:make_lm", "--input-shape", "32", "--input-dtype", "long",
             "--vocab", "1000", "--input-batch", "16", "--json")
    assert lm.exit_code == 0, lm.output
    (doc,) = json.loads(lm.output)["diagnoses"]
    assert doc["verdict"]["summary"] == "ok" and len(doc["layers"]) == 13
    assert [r["kind"] for r in doc["layers"][:3]] == ["MultiheadAttention", "Linear", "Linear"]


def test_playground_on_a_port_in_use_says_so_and_suggests_another(run, monkeypatch):
    import socket

    import initlab.playground

    def no_server(*_a, **_k):
        raise AssertionError("the server must not start on a port in use")
    monkeypatch.setattr(initlab.playground, "serve", no_server)
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        result = CliRunner().invoke(main, ["playground", "--no-open", "--port", str(port)])
    assert result.exit_code == 2
    assert result.output.strip() == (f"Error: port {port} is in use (another server, maybe another playground); "
                                     f"choose another with --port, like --port {port + 1}.")
    assert "http://" not in result.output


def test_report_open_says_when_no_browser_could_be_opened(run, tmp_path, monkeypatch):
    import webbrowser

    assert run("diagnose", "--depth", "2", "--width", "4", "--input-batch", "8", "--json",
               "--out", str(tmp_path)).exit_code == 0
    for opened, told in ((False, True), (True, False)):
        monkeypatch.setattr(webbrowser, "open", lambda url, opened=opened: opened)
        result = run("report", str(tmp_path), "--open")
        assert result.exit_code == 0, result.output
        assert ("No browser could be opened" in result.output) is told


def test_report_out_creates_missing_folders(run, tmp_path):
    assert run("diagnose", "--depth", "2", "--width", "4", "--input-batch", "8", "--json",
               "--out", str(tmp_path / "d")).exit_code == 0
    page = tmp_path / "new" / "deeper" / "page.html"
    result = run("report", str(tmp_path / "d"), "--out", str(page))
    assert result.exit_code == 0, result.output
    assert page.stat().st_size > 0


def test_a_disk_error_while_working_is_one_line_exit_1(run, tmp_path, monkeypatch):
    from initlab import report

    def denied(*_a, **_k):
        raise PermissionError(13, "Permission denied", str(tmp_path / "x.png"))
    monkeypatch.setattr(report, "render", denied)
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: cannot use '{tmp_path / 'x.png'}': Permission denied."


def test_ctrl_c_in_a_sweep_says_what_is_kept_and_the_same_command_resumes(tmp_path, monkeypatch):
    from initlab import sweep

    real, calls = sweep.train_group, []

    def interrupted_on_the_second_group(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)
    args = ["sweep", "--steps", "2", "--n", "50", "--depth", "1", "--width", "2", "--seeds", "3", "--group-size", "1",
            "--no-progress", "--json", "--out", str(tmp_path)]
    monkeypatch.setattr(sweep, "train_group", interrupted_on_the_second_group)
    stopped = CliRunner().invoke(main, args)
    assert stopped.exit_code == 130 and "Traceback" not in stopped.output
    assert "Interrupted: 1 of 3 runs are kept in" in stopped.output
    assert "The same command resumes and trains the other 2" in stopped.output
    monkeypatch.setattr(sweep, "train_group", real)
    resumed = CliRunner().invoke(main, args, catch_exceptions=False)
    assert resumed.exit_code == 0, resumed.output
    outcome = json.loads(resumed.output)
    assert (outcome["trained"], outcome["skipped"]) == (2, 1)


# --------------------------------------------------------------------------------------------------
# one flag per concept; old names kept working, unseen


def _options(command):
    return [p for p in command.params if isinstance(p, click.Option)]


def _shown(command) -> set:
    return {o for p in _options(command) if not p.hidden for o in p.opts}


def test_old_flag_names_are_hidden_from_help_and_used_nowhere_else(run):
    """An old name (a hidden option) appears in no command's --help, and no command shows it as its own."""
    old = {o for command in main.commands.values() for p in _options(command) if p.hidden for o in p.opts}
    assert {"--hidden", "--batch"} <= old
    for name, command in main.commands.items():
        text = run(name, "--help").output
        for flag in old:
            assert not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text), (name, flag)
        assert not old & _shown(command), name
        for alias in (p for p in command.params if isinstance(p, AliasOption)):
            assert alias.alias_of in {p.name for p in _options(command) if not p.hidden}, (name, alias.opts)


def test_every_mlp_is_shaped_by_depth_and_width(run):
    for name in ("init", "train", "diagnose", "sweep"):
        assert {"--depth", "--width"} <= _shown(main.commands[name]), name
    assert "--width" in _shown(main.commands["theory"])


@pytest.mark.parametrize("command, old, new", [
    (["init", "--json"], ["--hidden", "8x2"], ["--depth", "2", "--width", "8"]),
    (["init", "--json"], ["--hidden", "8,8"], ["--depth", "2", "--width", "8"]),
    (["diagnose", "--json"], ["--hidden", "8x3", "--batch", "16"],
     ["--depth", "3", "--width", "8", "--input-batch", "16"]),
    (["diagnose", "--json", "--scheme", "he_normal"], ["--batch", "16"], ["--input-batch", "16"]),
    (["train", "--json", "--no-progress", "--steps", "20", "--n", "60"], ["--hidden", "4x2"],
     ["--depth", "2", "--width", "4"]),
])
def test_an_old_flag_name_gives_the_same_result_as_the_new(run, tmp_path, monkeypatch, command, old, new):
    monkeypatch.chdir(tmp_path)
    before, after = run(*command, *old), run(*command, *new)
    assert before.exit_code == 0 and after.exit_code == 0, (before.output, after.output)
    assert json.loads(before.output) == json.loads(after.output)


def test_the_old_hidden_still_takes_unequal_widths(run):
    doc = json.loads(run("init", "--hidden", "8,4", "--json").output)
    assert [e["shape"] for e in doc["entries"] if e["parameter"].endswith("weight")][:2] == [[8, 2], [4, 8]]


@pytest.mark.parametrize("args, message", [
    (["init", "--hidden", "8x2", "--depth", "3"], "--hidden is the old form of --depth and --width: give --depth"),
    (["train", "--hidden", "8x2", "--width", "3", "--steps", "1"], "give --width without --hidden"),
    (["diagnose", "--batch", "8", "--input-batch", "4"], "--batch is the old name of --input-batch"),
    (["diagnose", "--model", "m:f", "--input-shape", "3", "--depth", "2"], "--depth is for the built-in MLP"),
    (["diagnose", "--model", "m:f", "--input-shape", "3", "--depth", "2", "--width", "3", "--activation", "tanh"],
     "--depth, --width and --activation are for the built-in MLP"),
    (["diagnose", "--batch", "1"], "Invalid value for '--batch'"),
])
def test_old_and_new_names_together_or_bad_old_values_are_one_error(run, args, message):
    result = run(*args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith("Error:") and message in result.output, result.output


def test_diagnose_as_built_is_the_same_for_the_same_seed(run):
    """A model "as built" draws from the global stream: --seed makes it one model, not a new one each run."""
    args = ("diagnose", "--depth", "3", "--width", "8", "--input-batch", "16", "--json")
    assert run(*args).output == run(*args).output
    assert run(*args, "--seed", "1").output != run(*args).output


# --------------------------------------------------------------------------------------------------
# the sweep file of the README, and the sweep's flags


def _readme_sweep_file() -> tuple[str, str]:
    """The README's TOML block, and the text that introduces it."""
    text = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"(?s)([^`]{0,400})```toml\n(.*?)```", text)
    assert len(blocks) == 1, "the README has one sweep file"
    return blocks[0][1], blocks[0][0]


def test_the_readme_sweep_file_holds_every_key_and_runs(tmp_path, monkeypatch):
    import tomllib

    from initlab.sweep import TOP_KEYS

    toml, intro = _readme_sweep_file()
    doc = tomllib.loads(toml)
    assert set(doc) == TOP_KEYS, set(doc) ^ TOP_KEYS
    assert any(isinstance(v, dict) for e in doc["scheme"] for v in e.values()), "a grid in a [[scheme]] table"
    (tmp_path / "grid.toml").write_text(toml)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["sweep", "grid.toml", "--dry-run", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    runs = json.loads(result.output)["runs"]
    assert f"lists its {runs} runs" in " ".join(intro.split()), intro  # the count the README gives
    shown = CliRunner().invoke(main, ["sweep", "grid.toml", "--dry-run"], catch_exceptions=False)
    assert shown.exit_code == 0 and f"{runs} runs" in shown.output
    assert not (tmp_path / "initlab-out").exists()  # a dry run writes nothing


def test_every_sweep_file_key_is_also_a_flag():
    from initlab.sweep import TOP_KEYS

    flags = _shown(main.commands["sweep"])
    assert {"--" + key.replace("_", "-") for key in TOP_KEYS} <= flags


@pytest.mark.parametrize("args, runs", [
    (["--seeds", "3"], 3),
    (["--seeds", "0,5,7"], 3),
    (["--data-seed", "0,1", "--batch-size", "8,full"], 4),
    (["--scheme", "default,normal", "--param", "bias_std=0.1,0.2"], 3),  # default takes no bias parameters
    (["--scheme", "default,xavier_uniform", "--param", "bias=0.1"], 2),
])
def test_sweep_flags_take_what_the_file_takes(tmp_path, monkeypatch, args, runs):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["sweep", *args, "--dry-run", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["runs"] == runs


# --------------------------------------------------------------------------------------------------
# files: write only what was asked, never over a file initlab did not write (issue 15)

TINY = ("--scheme", "xavier_uniform", "--depth", "2", "--width", "8", "--steps", "20", "--n", "100", "--no-progress")


def test_train_refuses_a_folder_with_a_users_files_unless_forced_and_rewrites_its_own(tmp_path):
    run = CliRunner().invoke
    out = tmp_path / "mine"
    out.mkdir()
    (out / "index.html").write_text("my notes")
    (out / "keep.txt").write_text("untouched")
    result = run(main, ["train", *TINY, "--out", str(out)])
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert "index.html" in result.output and "--force" in result.output
    assert (out / "index.html").read_text() == "my notes" and sorted(p.name for p in out.iterdir()) == [
        "index.html", "keep.txt"]
    assert run(main, ["train", *TINY, "--out", str(out), "--force"]).exit_code == 0
    assert (out / "index.html").read_text() != "my notes" and (out / "keep.txt").read_text() == "untouched"
    assert run(main, ["train", *TINY, "--out", str(out)]).exit_code == 0  # its own folder now: rewritten


def test_a_users_results_json_is_not_taken_for_initlab_output(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "results.json").write_text('{"mine": 1}')
    result = CliRunner().invoke(main, ["diagnose", "--depth", "2", "--width", "8", "--out", str(out)])
    assert result.exit_code == 0  # diagnose writes no results.json
    result = CliRunner().invoke(main, ["train", *TINY, "--out", str(out)])
    assert result.exit_code == 2 and "results.json" in result.output, result.output
    assert (out / "results.json").read_text() == '{"mine": 1}'


def test_report_refuses_a_users_page_and_rewrites_its_own(tmp_path):
    run = CliRunner().invoke
    assert run(main, ["train", *TINY, "--out", str(tmp_path / "t")]).exit_code == 0
    mine = tmp_path / "mine.html"
    mine.write_text("<p>my page</p>")
    result = run(main, ["report", str(tmp_path / "t"), "--out", str(mine)])
    assert result.exit_code == 2 and "mine.html" in result.output and "--force" in result.output, result.output
    assert mine.read_text() == "<p>my page</p>"
    assert run(main, ["report", str(tmp_path / "t"), "--out", str(mine), "--force"]).exit_code == 0
    assert run(main, ["report", str(tmp_path / "t"), "--out", str(mine)]).exit_code == 0  # now initlab's page


def test_theory_plot_never_overwrites_without_force(tmp_path):
    run = CliRunner().invoke
    png = tmp_path / "phase.png"
    png.write_bytes(b"mine")
    result = run(main, ["theory", "--plot", str(png)])
    assert result.exit_code == 2 and "--force" in result.output and png.read_bytes() == b"mine"
    assert run(main, ["theory", "--plot", str(png), "--force"]).exit_code == 0 and png.read_bytes() != b"mine"


def test_a_sweep_page_writes_its_figures_under_names_derived_from_its_own(tmp_path):
    from initlab.store import Store
    from test_page_safety import _record

    with Store(tmp_path / "runs.db") as store:
        store.write([_record(seed, 0.6 + 0.1 * seed) for seed in range(4)])
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "heatmap.png").write_bytes(b"mine")
    result = CliRunner().invoke(main, ["report", str(tmp_path / "runs.db"), "--out", str(notes / "page.html")])
    assert result.exit_code == 0, result.output
    assert (notes / "heatmap.png").read_bytes() == b"mine"
    assert sorted(p.name for p in notes.iterdir()) == ["heatmap.png", "page-curves.png", "page-heatmap.png",
                                                       "page-thumbnails.png", "page.html"]
