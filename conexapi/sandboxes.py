"""``conexapi sandbox``: every installed connector's simulator on a localhost port."""

from __future__ import annotations

import asyncio
import signal
import socket

from conexapi.serving import PortUnavailable, listen, serving
from conexapi.settings import Settings
from connectors.registry import all_connectors


def sandbox_ports(settings: Settings) -> dict[str, int]:
    """Each connector's sandbox port: the one its settings name, else the first free one
    from 8101."""
    ports: dict[str, int] = {}
    next_port = 8101
    for name in sorted(all_connectors()):
        own = settings.connectors.get(name)
        port = own.sandbox_port if own is not None else None
        if port is None:
            while next_port in ports.values():
                next_port += 1
            port = next_port
        ports[name] = port
    return ports


def exports(urls: dict[str, str]) -> list[str]:
    """The variables that point the product at each sandbox, as each connector's settings
    name them."""
    specs = all_connectors()
    lines: list[str] = []
    for name, url in urls.items():
        model = specs[name].settings if name in specs else None
        if model is not None and model.sandbox_urls:
            names = [model.env_name(field) for field in model.sandbox_urls]
        else:
            names = [f"CONEXAPI_{name.upper()}_API_URL"]
        lines.extend(f"export {var}={url}" for var in names)
    return lines


async def run_sandboxes(settings: Settings, host: str | None = None) -> None:
    """Serve every sandbox until SIGINT or SIGTERM. Raises
    :class:`~conexapi.serving.PortUnavailable` before serving anything if a port is taken."""
    bind = host or settings.sandbox_host
    ports = sandbox_ports(settings)
    specs = all_connectors()
    sockets: list[socket.socket] = []
    try:
        for port in ports.values():
            sockets.append(listen(bind, port))
    except PortUnavailable:
        for sock in sockets:
            sock.close()
        raise
    apps = [
        (name, specs[name].sandbox_app(), bind, sock)
        for name, sock in zip(ports, sockets, strict=True)
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with serving(apps, settings) as served:
        urls = {s.name: s.url for s in served}
        for s in served:
            print(f"{s.name:>14} sandbox  {s.url}   (admin: {s.url}/_sandbox/config)")
        print("\nPoint ConexAPI at them:")
        for line in exports(urls):
            print("  " + line)
        await stop.wait()
