"""``initlab audit``: does a model hold what its recipe says each tensor should get?"""

from __future__ import annotations

import json

import click

from .base import examples, main, scheme_params, split_pairs


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
def audit_cmd(model_path, recipe, params, role_pairs, seed, as_json):
    """Audit a model against a recipe: per group of tensors (role x layer), the expected std (or value,
    or orthogonality) beside the measured one, within a statistical tolerance; untouched, tied and
    uncovered tensors. Exits 1 when a group fails."""
    import torch

    from ..audit import audit
    from ..diagnose import build, load_factory

    roles: dict[str, list[str]] = {}
    for pair in role_pairs:
        for role, pattern in split_pairs((pair,), "a role is ROLE=PATTERN, like branch_out=*.c_proj").items():
            roles.setdefault(role, []).append(pattern)
    factory = load_factory(model_path)
    with torch.random.fork_rng(devices=[]):  # a model "as built" draws from the global stream
        torch.manual_seed(seed)
        model = build(factory)
    result = audit(model, recipe, roles=roles or None, **scheme_params(params))
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(result.table())
    if not result.passed:
        raise SystemExit(1)
