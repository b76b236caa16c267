"""Who may talk to the playground: the checks every request passes before it reaches a route.

A server on 127.0.0.1 is still reachable from any web page the user opens: that page's scripts can
send "simple" cross-origin requests (a ``text/plain`` POST needs no preflight), and a DNS name that
rebinds to 127.0.0.1 makes the browser treat the playground as that name's own origin. So:

- ``Host`` must name the address served (421 otherwise): the loopback names ``127.0.0.1``,
  ``localhost`` and ``[::1]`` when serving loopback, the ``--host`` value otherwise; with the port
  served when it is known. A rebinding name never matches.
- A request that changes state (POST, PUT, PATCH, DELETE) must carry no ``Origin`` or the page's own,
  ``http://<Host>`` (403 otherwise); a POST must say ``Content-Type: application/json`` (415
  otherwise), which no cross-origin page can send without a preflight that this server never grants.
"""

from __future__ import annotations

import ipaddress
import json

LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
WILDCARD = ("0.0.0.0", "::", "")
STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def _is_loopback(host: str) -> bool:
    return host == "localhost" or (_is_ip(host) and ipaddress.ip_address(host.strip("[]")).is_loopback)


class Guard:
    """ASGI middleware: the Host, Origin and content-type checks above, in front of ``app``.

    ``host`` and ``port`` are what the server listens on. A loopback ``host`` accepts every loopback
    name; ``0.0.0.0`` or ``::`` (every address) accepts the loopback names and any IP address, since
    only a DNS name can be rebound; any other ``host`` accepts itself. ``port=None`` accepts any port
    (for an app that does not know where it is served).
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int | None = None):
        self.app, self.port = app, port
        self.any_ip = host in WILDCARD
        self.names = set(LOOPBACK) if _is_loopback(host) or self.any_ip else {_bracketed(host).lower()}

    def host_ok(self, value: str) -> bool:
        value = value.strip().lower()
        if value.startswith("["):
            name, _, port = value.partition("]")
            name, port = name + "]", port[1:] if port.startswith(":") else port or ""
        else:
            name, _, port = value.partition(":")
        if not port.isdigit() and port != "":
            return False
        if self.port is not None and port != str(self.port) and not (port == "" and self.port == 80):
            return False
        return name in self.names or (self.any_ip and _is_ip(name))

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        method = scope["method"]
        if not self.host_ok(host):
            status, message = 421, (f"this playground does not answer to Host '{host[:100]}'; open it at the "
                                    f"address it printed.")
        elif method in STATE_CHANGING and "origin" in headers and headers["origin"].lower() != f"http://{host.lower()}":
            status, message = 403, f"requests from {headers['origin'][:100]} may not change the playground."
        elif method == "POST" and headers.get("content-type", "").split(";")[0].strip() != "application/json":
            status, message = 415, "a POST to the playground must have Content-Type: application/json."
        else:
            return await self.app(scope, receive, send)
        body = json.dumps({"error": message}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
