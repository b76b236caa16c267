"""``initlab audit``: does a model hold what its recipe says each tensor should get?"""

from __future__ import annotations

import json

import click

from .base import FORCE, command_line, examples, main, out_folder, scheme_params, split_pairs


@main.command("audit", epilog=examples(
    "initlab audit --model mymodels:gpt --recipe gpt2 --param n_layer=12",
    "initlab audit --model mymodels:gpt --recipe gpt2 --role branch_out=*.c_proj --json"))
@click.option("--model", "model_path", required=True, metavar="PACKAGE.MODULE:FACTORY",
              help="A factory returning the model to audit, as it builds it (initialized however it is).")
@click.option("--recipe", required=True, help="The recipe (or scheme) the model should follow, e.g. gpt2, fixup.")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="A recipe parameter, e.g. n_layer=12, std=0.02.")
@click.option("--role", "role_pairs", multiple=True, metavar="ROLE=PATTERN",
              help="Name a role's tensors, e.g. branch_out=*.c_proj (repeat a role for several patterns).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the global stream while the factory builds the model.")
@click.option("--json", "as_json", is_flag=True, help="Print the audit as JSON.")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Also write audit.json and its page, index.html, to this folder.")
@FORCE
def audit_cmd(model_path, recipe, params, role_pairs, seed, as_json, out, force):
    """Audit a model against a recipe: per group of tensors (role x layer), the expected std (or value,
    or orthogonality) beside the measured one, within a statistical tolerance; untouched, tied and
    uncovered tensors. Exits 1 when a group fails."""
    import torch

    from ..audit import audit
    from ..diagnose import build, load_factory
    from ..outputs import FILES

    roles: dict[str, list[str]] = {}
    for pair in role_pairs:
        for role, pattern in split_pairs((pair,), "a role is ROLE=PATTERN, like branch_out=*.c_proj").items():
            roles.setdefault(role, []).append(pattern)
    folder = out_folder(out, "--out", FILES["audit"], force)
    factory = load_factory(model_path)
    with torch.random.fork_rng(devices=[]):  # a model "as built" draws from the global stream
        torch.manual_seed(seed)
        model = build(factory)
    result = audit(model, recipe, roles=roles or None, **scheme_params(params))
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(result.table())
    if folder is not None:
        _write_folder(folder, result.to_dict())
    if not result.passed:
        raise SystemExit(1)


def _write_folder(folder, doc: dict) -> None:
    """The audit folder: ``audit.json`` (:func:`initlab.outputs.write_audit`) and its page."""
    from .. import report
    from ..experiment import environment
    from ..outputs import write_audit

    write_audit(folder, doc, command_line(), environment())
    page = report.render(folder, folder / "index.html")
    click.echo(f"The audit and its page: {page}", err=True)
