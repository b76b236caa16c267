"""``initlab playground``: train networks live in the browser, from any scheme, side by side.

``create_app()`` is the ASGI app (Starlette); ``serve()`` runs it with uvicorn; ``Stepper`` is
:func:`initlab.train` cut into steps; ``settings.parse`` checks a URL's settings.
"""

from .app import create_app, serve
from .session import Manager, Session
from .settings import Settings, parse
from .stepper import Stepper

__all__ = ["Manager", "Session", "Settings", "Stepper", "create_app", "parse", "serve"]
