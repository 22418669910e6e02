"""Connectors found through the ``conexapi.connectors`` entry-point group, so a connector
can live in its own pip package."""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from connectors.base import ConnectorSpec

GROUP = "conexapi.connectors"


class UnknownConnector(KeyError):
    pass


@cache
def all_connectors() -> dict[str, ConnectorSpec]:
    found: dict[str, ConnectorSpec] = {}
    for ep in entry_points(group=GROUP):
        spec = ep.load()
        if not isinstance(spec, ConnectorSpec):
            raise TypeError(f"entry point {ep.name!r} is not a ConnectorSpec")
        found[spec.name] = spec
    return found


def get_connector(name: str) -> ConnectorSpec:
    try:
        return all_connectors()[name]
    except KeyError:
        raise UnknownConnector(name) from None
