"""initlab: see, measure and fix how neural networks start.

The public API: every name below is importable as ``initlab.<name>``. Each is loaded from its module
when first asked (PEP 562), so ``import initlab`` and ``initlab --help`` load neither torch nor
scikit-learn.
"""

from __future__ import annotations

import importlib
import types

from ._version import __version__

#: Each public name -> the module that defines it (a module's own name: the module itself).
_HOMES = {
    "jacobian_spectrum": "signal", "correlation_map": "signal", "ntk": "ntk", "JacobianSpectrum": "signal",
    "CorrelationMap": "signal", "NTK": "ntk", "width_sweep": "widths", "WidthSweep": "widths",
    "Diagnosis": "diagnose", "diagnose": "diagnose", "train_many": "ensemble", "InitlabError": "errors",
    "Manifest": "init", "initialize": "init", "register_layer": "layers", "LSUVResult": "lsuv", "lsuv": "lsuv",
    "mlp": "models", "fans": "schemes", "gain": "schemes", "schemes": "schemes", "variance_scaling": "schemes",
    "load": "results", "effective_width": "symmetry", "TrainResult": "train", "probability_grid": "train",
    "train": "train", "datasets": "datasets", "theory": "theory", "RunConfig": "config", "recipes": "recipes",
    "ResidualStream": "residual", "residual_stream": "residual", "audit": "audit",
    "watch": "watch", "Watch": "watch",
}
#: Public functions named like the module that defines them: the function, never the module, is ``initlab.<name>``.
_SHADOWED = {name for name, home in _HOMES.items() if name == home and name not in ("datasets", "theory")}

__all__ = [
    "CorrelationMap", "JacobianSpectrum", "NTK", "WidthSweep", "correlation_map", "jacobian_spectrum", "ntk",
    "width_sweep",
    "Diagnosis", "InitlabError", "LSUVResult", "Manifest", "RunConfig", "TrainResult", "__version__", "datasets", "diagnose",
    "effective_width", "fans", "gain", "initialize", "load", "lsuv", "mlp", "probability_grid", "recipes", "register_layer",
    "ResidualStream", "residual_stream", "audit", "schemes", "theory", "train", "train_many", "variance_scaling",
    "watch", "Watch",
]


def __getattr__(name: str):
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'initlab' has no attribute '{name}'")
    module = importlib.import_module(f"{__name__}.{home}")
    value = module if name == home and name not in _SHADOWED else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """The package, whose public functions ``diagnose``, ``lsuv``, ``schemes`` and ``train`` keep their
    names when their modules are imported (the import system binds each submodule on its package)."""

    def __setattr__(self, name, value):
        if name in _SHADOWED and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


import sys as _sys  # noqa: E402

_sys.modules[__name__].__class__ = _Package
