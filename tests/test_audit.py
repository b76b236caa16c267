"""The audit: a model built by its recipe passes for any seed; a model with a role scaled by sqrt(2),
a role skipped or the depth scaling on the wrong names fails, naming the tensors; a tied tensor is
reported and measured once; `initlab audit` exits 0 or 1 and prints JSON."""

from __future__ import annotations

import json
import math
import re
import sys

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import initlab
from gptlike import GPT as GPTLike
from initlab.audit import std_tolerance
from initlab.cli import main
from initlab.errors import InitlabError

L_LAYERS, D = 4, 32


def GPT(n_layer=L_LAYERS, d=D, vocab=100, ctx=16, tie=False):
    """GPT-2's layout (tests/gptlike.py), small."""
    return GPTLike(n_layer=n_layer, d=d, vocab=vocab, ctx=ctx, tie=tie)


def built(seed=0, **kw):
    model = GPT(**kw)
    initlab.initialize(model, "gpt2", n_layer=L_LAYERS, seed=seed)
    return model


def layers_named(model, leaf):
    return [m for n, m in model.named_modules() if n.endswith(leaf)]


def group(result, role, tensor="weight"):
    return next(g for g in result.groups if g["role"] == role and g["layer"] == "Linear" and g["tensor"] == tensor)


C_PROJ = [f"h.{i}.{part}.c_proj.weight" for i in range(L_LAYERS) for part in ("attn", "mlp")]
C_FC = [f"h.{i}.mlp.c_fc.weight" for i in range(L_LAYERS)]


# ------------------------------------------------------------------------------ the right model
@pytest.mark.parametrize("seed", range(20))
def test_a_model_built_by_the_recipe_passes_for_every_seed(seed):
    result = initlab.audit(built(seed), "gpt2", n_layer=L_LAYERS)
    assert result.passed, result.table()
    out = group(result, "branch_out")
    assert out["expected"] == pytest.approx(0.02 / math.sqrt(2 * L_LAYERS))
    assert sorted(out["tensors"]) == sorted(C_PROJ) and out["n"] == L_LAYERS * (D * D + 4 * D * D)
    assert not result.untouched and not result.uncovered and not result.failures


def test_the_tolerance_is_the_normal_standard_error_of_a_sample_std():
    assert std_tolerance(1.0, 5001, sigmas=5, floor=0) == pytest.approx(5 / math.sqrt(10000))
    assert std_tolerance(2.0, 5001, sigmas=0, floor=0.01) == pytest.approx(0.02)


def test_exact_zeros_are_checked_exactly():
    model = built()
    with torch.no_grad():
        model.h[2].mlp.c_fc.bias[3] = 1e-12
    result = initlab.audit(model, "gpt2", n_layer=L_LAYERS)
    assert not result.passed and group(result, "base", "bias")["failing"] == ["h.2.mlp.c_fc.bias"]


# ----------------------------------------------------------------------------- broken variants
def test_a_role_scaled_by_sqrt_2_fails_naming_its_tensors():
    for seed in range(5):
        model = built(seed)
        with torch.no_grad():
            for m in layers_named(model, "c_proj"):
                m.weight.mul_(math.sqrt(2))
        result = initlab.audit(model, "gpt2", n_layer=L_LAYERS)
        assert not result.passed
        bad = group(result, "branch_out")
        assert not bad["passed"] and sorted(bad["failing"]) == sorted(C_PROJ)
        assert bad["measured"] == pytest.approx(bad["expected"] * math.sqrt(2), rel=0.05)
        assert [g["role"] for g in result.groups if not g["passed"]] == ["branch_out"]  # nothing else fires
        assert not result.untouched  # scaled, not PyTorch's default
        assert "h.0.attn.c_proj.weight" in result.failures[0] and "h.0.attn.c_proj.weight" in result.table()


def test_a_role_skipped_fails_and_its_tensors_look_untouched():
    model = built()
    torch.manual_seed(0)
    for m in layers_named(model, "c_proj"):
        m.reset_parameters()
    result = initlab.audit(model, "gpt2", n_layer=L_LAYERS)
    assert not result.passed
    assert sorted(group(result, "branch_out")["failing"]) == sorted(C_PROJ)
    assert sorted(group(result, "branch_out", "bias")["failing"]) == sorted(n.replace("weight", "bias") for n in C_PROJ)
    untouched = {u["tensor"]: u for u in result.untouched}
    assert set(C_PROJ) <= set(untouched)
    assert untouched["h.0.mlp.c_proj.weight"]["default_std"] == pytest.approx(1 / math.sqrt(3 * 4 * D))
    assert "untouched: h.0.attn.c_proj.weight" in result.table()


def test_the_depth_scaling_on_the_wrong_names_fails_naming_both():
    model = GPT()
    initlab.initialize(model, "gpt2", n_layer=L_LAYERS, roles={"branch_out": "*.c_fc"}, seed=0)
    result = initlab.audit(model, "gpt2", n_layer=L_LAYERS)
    assert not result.passed
    assert sorted(group(result, "branch_out")["failing"]) == sorted(C_PROJ)  # std 0.02, not 0.02 / sqrt(2L)
    assert sorted(group(result, "base")["failing"]) == C_FC  # std 0.02 / sqrt(2L), not 0.02
    assert not result.untouched
    text = "\n".join(result.failures)
    assert all(n in text for n in C_PROJ + C_FC)
    # the same model audited with the names it was built by passes
    assert initlab.audit(model, "gpt2", roles={"branch_out": "*.c_fc"}, n_layer=L_LAYERS).passed


def test_one_wrong_tensor_in_a_large_group_is_found():
    model = built()
    with torch.no_grad():
        model.h[1].attn.c_attn.weight.mul_(1.5)
    result = initlab.audit(model, "gpt2", n_layer=L_LAYERS)
    assert group(result, "base")["failing"] == ["h.1.attn.c_attn.weight"]


# ------------------------------------------------------------------------------ tied, uncovered
def test_a_tied_tensor_is_reported_and_measured_once():
    model = built(tie=True)
    result = initlab.audit(model, "gpt2", n_layer=L_LAYERS)
    assert result.passed, result.table()
    # drawn by wte's embedding rule, N(0, 0.02^2), which is also the rule head.weight gets alone: nothing missed
    assert result.tied == [{"tensor": "wte.weight", "names": ["wte.weight", "head.weight"], "by": "wte.weight",
                            "rule": "normal(std=0.02)", "roles": {"wte.weight": "embedding"}}]
    emb = next(g for g in result.groups if g["role"] == "embedding")
    assert emb["tensors"] == ["wte.weight", "wpe.weight"] and emb["n"] == (100 + 16) * D  # wte counted once
    assert "head.weight" not in group(result, "base")["tensors"]
    assert "tied: wte.weight = head.weight: one tensor, drawn once by wte.weight's rule, normal(std=0.02)" \
        in result.table()
    assert "NOT APPLIED" not in result.table()


def test_fixup_on_a_tied_head_says_no_rule_drew_the_tensor_and_fails_the_readout_rule_it_missed():
    """nanoGPT's tie (head.weight is wte.weight) under Fixup: the embedding comes first and gets no rule,
    so the shared tensor is left as it was and the readout's rule (0) never reaches it. The audit says
    so: the tied note names no rule that did not draw it, the readout group measures the tensor and
    fails, and the audit does not pass."""
    model = GPT(tie=True)
    initlab.initialize(model, "fixup", seed=0)
    assert model.head.weight.abs().max() > 0  # what initialize really did: the readout rule was not applied
    result = initlab.audit(model, "fixup")
    assert not result.passed and "every group passes" not in result.table()
    (tied,) = result.tied
    assert (tied["tensor"], tied["names"], tied["rule"], tied["by"]) == \
        ("wte.weight", ["wte.weight", "head.weight"], "left as it was", None)
    assert "embedding gets a rule only when you choose one" in tied["reason"]
    assert tied["not_applied"] == [{"name": "head.weight", "block": None, "role": "readout", "rule": "zeros"}]
    readout = group(result, "readout")
    assert not readout["passed"] and readout["failing"] == ["head.weight"] and readout["n"] == 100 * D
    text = result.table()
    assert "he_normal" not in next(line for line in text.splitlines() if line.startswith("tied:"))
    assert "which no rule drew: left as it was" in text and "NOT APPLIED: head.weight's rule (readout: zeros)" in text
    assert json.loads(json.dumps(result.to_dict()))["tied"][0]["not_applied"][0]["rule"] == "zeros"
    # the same model untied: the readout rule is applied and the group passes
    untied = GPT()
    initlab.initialize(untied, "fixup", seed=0)
    alone = initlab.audit(untied, "fixup")
    assert alone.passed and group(alone, "readout")["tensors"] == ["head.weight"] and not alone.tied


def test_tensors_no_rule_covers_are_listed():
    model = built()
    model.h[0].scale = nn.Parameter(torch.ones(D))  # a parameter of a module initlab does not know
    result = initlab.audit(model, "gpt2", n_layer=L_LAYERS)
    assert [u["tensor"] for u in result.uncovered] == ["h.0.scale"]
    assert result.passed and "no rule: h.0.scale" in result.table()


def test_the_result_as_dict_and_html():
    result = initlab.audit(built(), "gpt2", n_layer=L_LAYERS)
    d = json.loads(json.dumps(result.to_dict()))
    assert d["passed"] is True and d["recipe"] == {"name": "gpt2", "params": {"n_layer": L_LAYERS}}
    assert {"groups", "untouched", "tied", "uncovered", "failures", "tolerance"} <= set(d)
    html = result._repr_html_()
    assert html.count("<tr>") == len(result.groups) + 1 and "branch_out" in html
    assert repr(result) == "AuditResult(gpt2: 7 groups, all pass)"


def _significant_digits(number: str) -> int:
    mantissa = re.split("[eE]", number)[0].replace(".", "").lstrip("0")
    return len(mantissa)


def test_the_page_writes_each_list_as_sentences_with_rounded_numbers():
    """The page's lists of tied, untouched, uncovered and unchecked tensors: sentences naming the
    tensors, no Python dict, no number longer than 4 significant digits (the recipe's 0.02 / sqrt(8)
    is 0.00707, not 0.0070710678118654745)."""
    from initlab.report.audit import audit_body

    model = built(tie=True)
    model.h[0].scale = nn.Parameter(torch.ones(D))  # covered by no rule
    torch.manual_seed(0)
    model.h[1].mlp.c_proj.reset_parameters()  # looks untouched
    mlp = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4))
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    initlab.initialize(mlp, "lsuv", inputs=x, seed=0)
    pages = [audit_body(json.loads(json.dumps(initlab.audit(model, "gpt2", n_layer=L_LAYERS).to_dict())))[1],
             audit_body(json.loads(json.dumps(initlab.audit(mlp, "lsuv", inputs=x).to_dict())))[1]]
    lists = "".join(page[page.index("</table>"):] for page in pages)  # every list below the groups' table
    for title in ("Tied tensors", "Looks untouched", "Covered by no rule", "Not checked"):
        assert title in lists
    for name in ("wte.weight = head.weight", "h.1.mlp.c_proj.weight", "h.0.scale", "0.weight", "2.weight"):
        assert name in lists
    assert "{'" not in lists and "{&#x27;" not in lists
    numbers = re.findall(r"\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", lists)
    assert "0.00707" in numbers and max(map(_significant_digits, numbers)) <= 4, numbers


def test_bad_input_is_an_error():
    with pytest.raises(InitlabError, match="nn.Module"):
        initlab.audit(torch.zeros(3, 3), "gpt2")
    with pytest.raises(InitlabError, match="sigmas"):
        initlab.audit(built(), "gpt2", sigmas=-1)
    with pytest.raises(InitlabError, match="n_layr"):
        initlab.audit(built(), "gpt2", n_layr=3)


def test_the_model_is_only_read():
    model = built()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    initlab.audit(model, "gpt2", n_layer=L_LAYERS)
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())


# ------------------------------------------------------------------------------------------ CLI
@pytest.fixture()
def gpt_module(tmp_path, monkeypatch):
    (tmp_path / "auditmodels.py").write_text(
        "import math, torch, initlab\n"
        "from gptlike import GPT\n"
        "def good():\n    m = GPT(n_layer=4, d=32, ctx=16); initlab.initialize(m, 'gpt2', n_layer=4, seed=3); return m\n"
        "def scaled():\n    m = good()\n"
        "    with torch.no_grad():\n"
        "        for n, p in m.named_parameters():\n"
        "            if n.endswith('c_proj.weight'): p.mul_(math.sqrt(2))\n"
        "    return m\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "auditmodels", raising=False)
    return "auditmodels"


def test_cli_exit_codes_and_json(gpt_module):
    run = CliRunner().invoke
    ok = run(main, ["audit", "--model", f"{gpt_module}:good", "--recipe", "gpt2", "--param", "n_layer=4"])
    assert ok.exit_code == 0, ok.output
    assert "every group passes" in ok.output and "branch_out" in ok.output
    bad = run(main, ["audit", "--model", f"{gpt_module}:scaled", "--recipe", "gpt2", "--param", "n_layer=4"])
    assert bad.exit_code == 1, bad.output
    assert "FAIL branch_out Linear weight" in bad.output and "h.3.mlp.c_proj.weight" in bad.output
    js = run(main, ["audit", "--model", f"{gpt_module}:scaled", "--recipe", "gpt2", "--param", "n_layer=4",
                    "--role", "branch_out=*.c_proj", "--json"])
    assert js.exit_code == 1
    doc = json.loads(js.output)
    assert doc["passed"] is False and doc["recipe"]["params"] == {"n_layer": 4}
    assert any(g["role"] == "branch_out" and not g["passed"] for g in doc["groups"])


@pytest.mark.parametrize("args, message", [
    (["--model", "nosuchmodule:f", "--recipe", "gpt2"], "cannot import 'nosuchmodule'"),
    (["--model", "auditmodels:good", "--recipe", "gpt3"], "gpt3"),
    (["--model", "auditmodels:good", "--recipe", "gpt2", "--param", "n_layer"], "KEY=VALUE"),
    (["--model", "auditmodels:good", "--recipe", "gpt2", "--role", "branch_out"], "ROLE=PATTERN"),
    (["--model", "auditmodels:good", "--recipe", "gpt2", "--role", "branch_out=*.nothing"], "matches no layer"),
])
def test_cli_bad_input_is_one_line(gpt_module, args, message):
    result = CliRunner().invoke(main, ["audit", *args])
    assert result.exit_code == 2 and message in result.output, result.output
    assert result.output.strip().count("\n") == 0


@pytest.fixture
def gallery_models(monkeypatch):
    """examples/ on the path for ``mymodels:...``; the module is forgotten afterwards, so that another
    test's own ``mymodels.py`` is imported, not this one."""
    import sys
    from pathlib import Path

    sys.modules.pop("mymodels", None)
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "examples"))
    yield
    sys.modules.pop("mymodels", None)


def test_the_readme_audit_commands_on_the_gallery_factories(gallery_models):
    """The README's two commands: the GPT-style model as PyTorch builds it fails GPT-2's recipe
    (exit 1, naming the branch projections); the same model initialized by the recipe passes."""
    args = ["--recipe", "gpt2", "--param", "n_layer=12"]
    bad = CliRunner().invoke(main, ["audit", "--model", "mymodels:make_gpt", *args])
    assert bad.exit_code == 1 and "h.11.mlp.c_proj.weight" in bad.output, bad.output
    good = CliRunner().invoke(main, ["audit", "--model", "mymodels:make_gpt2_initialized", *args])
    assert good.exit_code == 0, good.output


def test_audit_out_writes_the_folder_and_its_page(tmp_path, gallery_models):
    """``initlab audit --out DIR`` writes audit.json (kind audit, schema 1) and index.html; the page
    says which groups failed and names their tensors, every name escaped; a second run rewrites it."""
    import json

    out = tmp_path / "audit"
    args = ["audit", "--model", "mymodels:make_gpt", "--recipe", "gpt2", "--param", "n_layer=12", "--out", str(out)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1, r.output
    doc = json.loads((out / "audit.json").read_text())
    assert (doc["kind"], doc["schema_version"], doc["audit"]["passed"]) == ("audit", 1, False)
    html = (out / "index.html").read_text()
    assert "Failed." in html and "h.11.mlp.c_proj.weight" in html and "FAIL" in html
    assert CliRunner().invoke(main, args).exit_code == 1  # its own folder: rewritten without --force
    from initlab.report import render

    page = render(out, tmp_path / "again.html")
    assert "initlab audit" in page.read_text()


# ------------------------------------ the recipes beyond gpt2: mimetic, ZerO's residual form, DeepNet enc-dec
class SplitAttention(nn.Module):
    def __init__(self, d=64, n_heads=4):
        super().__init__()
        self.num_heads = n_heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))


def transformer():
    return nn.Transformer(d_model=32, nhead=4, num_encoder_layers=3, num_decoder_layers=2, dim_feedforward=64,
                          batch_first=True)


class ResBlock(nn.Module):
    def __init__(self, c=8):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)


def zero_resnet():
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.Sequential(ResBlock(), ResBlock()), nn.Flatten(), nn.Linear(8, 4))


@pytest.mark.parametrize("seed", range(20))
def test_models_built_by_mimetic_deepnet_and_zero_residual_pass_for_every_seed(seed):
    for make, recipe in ((SplitAttention, "mimetic"), (lambda: nn.MultiheadAttention(32, 4), "mimetic"),
                         (transformer, "deepnet"), (zero_resnet, "zero_residual")):
        model = make()
        initlab.initialize(model, recipe, seed=seed)
        result = initlab.audit(model, recipe)
        assert result.passed, (recipe, result.table())
        assert not result.unchecked


@pytest.mark.parametrize("name", ["q_proj", "k_proj", "v_proj", "out_proj"])
def test_a_mimetic_projection_scaled_by_sqrt_2_fails_its_product(name):
    model = SplitAttention()
    initlab.initialize(model, "mimetic", seed=7)
    with torch.no_grad():
        getattr(model, name).weight.mul_(math.sqrt(2))
    result = initlab.audit(model, "mimetic")
    role = "query_key" if name in ("q_proj", "k_proj") else "value_out"
    assert not result.passed and all(f.startswith(role) for f in result.failures)


def test_deepnet_decoder_drawn_with_the_encoders_beta_fails_naming_the_decoder_layers():
    model = transformer()
    initlab.initialize(model, "deepnet", seed=0)
    n, m = 3, 2
    ratio = (0.87 * (n ** 4 * m) ** (-1 / 16)) / (12 * m) ** -0.25  # the encoder's beta over the decoder's
    with torch.no_grad():
        for blk in model.decoder.layers:
            blk.linear1.weight.mul_(ratio)
    result = initlab.audit(model, "deepnet")
    assert not result.passed
    assert "decoder.layers.0.linear1.weight" in " ".join(result.failures)
    assert "encoder" not in " ".join(result.failures)


def test_zero_residual_with_a_branch_left_at_the_default_fails():
    model = zero_resnet()
    initlab.initialize(model, "zero_residual", seed=0)
    model[1][1].conv2.reset_parameters()  # the last branch layer is no longer 0
    result = initlab.audit(model, "zero_residual")
    assert not result.passed and "1.1.conv2.weight" in " ".join(result.failures)
