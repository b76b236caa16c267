"""initlab: see, measure and fix how neural networks start.

The public API: every name below is importable as ``initlab.<name>``.
"""

from . import datasets, theory
from ._version import __version__
from .diagnose import Diagnosis, diagnose
from .ensemble import train_many
from .errors import InitlabError
from .init import Manifest, initialize
from .layers import register_layer
from .lsuv import LSUVResult, lsuv
from .models import mlp
from .schemes import fans, gain, schemes, variance_scaling
from .store import load
from .symmetry import effective_width
from .train import TrainResult, probability_grid, train

__all__ = [
    "Diagnosis", "InitlabError", "LSUVResult", "Manifest", "TrainResult", "__version__", "datasets", "diagnose",
    "effective_width", "fans", "gain", "initialize", "load", "lsuv", "mlp", "probability_grid", "register_layer",
    "schemes", "theory", "train", "train_many", "variance_scaling",
]
