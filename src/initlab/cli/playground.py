"""``initlab playground``: train networks live in the browser."""

from __future__ import annotations

import click

from ..errors import InitlabError
from .base import Number, err_console, examples, main


@main.command("playground", epilog=examples(
    "initlab playground", "initlab playground --port 8001 --settings 'scheme=constant&scheme=he_normal&depth=6'"))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback lets anyone who can reach the port use it.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--no-open", is_flag=True, help="Do not open the browser.")
@click.option("--settings", "query", default="", metavar="QUERY",
              help="Settings to open with, as in the page's URL: scheme=constant&scheme=xavier_uniform&depth=6.")
@click.option("--max-sessions", type=click.IntRange(min=1), default=32, show_default=True,
              help="Browser tabs served at once.")
@click.option("--idle-timeout", type=Number(min=0, min_open=True), default=60.0, show_default=True,
              help="Seconds after which a session no tab is watching is freed.")
def playground_cmd(host, port, no_open, query, max_sessions, idle_timeout):
    """Train networks live in the browser: pick a dataset, a network and schemes, press play, and watch
    the boundary, the per-layer scales and the symmetry change step by step."""
    from urllib.parse import parse_qsl

    from ..playground import Manager, parse, serve

    settings = parse(parse_qsl(query.lstrip("?"), keep_blank_values=True))
    _check_port(host, port)  # before the address is printed: a port in use would print another server's
    import ipaddress

    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        err_console.print(f"[bold yellow]warning:[/bold yellow] listening on {host}: anyone who can reach port "
                          f"{port} can use this playground (and its CPU).")
    url_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    click.echo(f"initlab playground: http://{url_host}:{port}/?{settings.query()}  (Ctrl+C stops it)")
    serve(host, port, open_browser=not no_open, query=settings.query(),
          manager=Manager(max_sessions=max_sessions, idle_timeout=idle_timeout))


def _check_port(host: str, port: int) -> None:
    """Refuse, in one line, a port that is in use or a host that is not this machine's, by binding to it
    as the server will (SO_REUSEADDR, as uvicorn does) and letting go at once."""
    import errno
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as e:
        raise InitlabError(f"--host '{host}' is not an address ({e.strerror}); use 127.0.0.1, or 0.0.0.0 for "
                           f"every address of this machine.") from None
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise InitlabError(f"port {port} is in use (another server, maybe another playground); "
                                   f"choose another with --port, like --port {port + 1 if port < 65535 else 8000}."
                                   ) from None
            if e.errno == errno.EADDRNOTAVAIL:
                raise InitlabError(f"--host '{host}' is not an address of this machine; use 127.0.0.1, or 0.0.0.0 "
                                   f"for every address.") from None
            raise InitlabError(f"cannot listen on {host}:{port}: {e.strerror}; try another --port.") from None
