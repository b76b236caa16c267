"""``initlab playground``: train networks live in the browser, from any scheme, side by side.

``create_app()`` is the ASGI app (Starlette); ``serve()`` runs it with uvicorn; ``Stepper`` is
:func:`initlab.train` cut into steps; ``settings.parse`` checks a URL's settings (``settings.nearest``
mends a refused one); ``upload`` reads a user's CSV (in memory only); ``export`` writes a run as a
PyTorch snippet, a ``.pt`` state dict and a JSON record.
"""

from .app import create_app, serve
from .session import Manager, Session
from .settings import Settings, parse
from .stepper import Stepper

__all__ = ["Manager", "Session", "Settings", "Stepper", "create_app", "parse", "serve"]
