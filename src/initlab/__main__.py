"""``python -m initlab``."""
from .cli import main

main(prog_name="initlab")
