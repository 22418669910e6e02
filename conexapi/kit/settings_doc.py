"""The configuration reference, generated from :class:`~conexapi.settings.Settings` and
every installed connector's settings model (one section each).

``python -m conexapi.kit.settings_doc`` (``make docs``) rewrites ``.env.example`` and the
tables between the ``settings`` markers in ``README.md``; a test fails when either is stale.
Descriptions come from a field's ``description`` or the ``#:`` comment above it; fields
declared on consecutive lines under one comment share it.
"""

from __future__ import annotations

import ast
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings

from conexapi.settings import INSECURE_ENCRYPTION_KEY, INSECURE_SECRET_KEY, Settings
from connectors.base import ConnectorSettings
from connectors.registry import all_connectors

ROOT = Path(__file__).resolve().parents[2]
README_START = "<!-- settings:start -->"
README_END = "<!-- settings:end -->"


@dataclass(frozen=True)
class SettingDoc:
    name: str
    env: str
    default: str
    description: str
    secret: bool


@dataclass(frozen=True)
class Section:
    #: Empty for the product's own settings; a connector's label otherwise.
    title: str
    docs: list[SettingDoc]


def _comments(model: type[BaseSettings]) -> dict[str, str]:
    """The ``#:`` comments above the fields of ``model`` and of its settings bases."""
    found: dict[str, str] = {}
    for klass in reversed(model.__mro__):
        if (
            isinstance(klass, type)
            and issubclass(klass, BaseSettings)
            and klass is not BaseSettings
        ):
            found.update(_class_comments(klass))
    return found


def _class_comments(klass: type) -> dict[str, str]:
    source = inspect.getsource(inspect.getmodule(klass))  # type: ignore[arg-type]
    lines = source.splitlines()
    tree = ast.parse(source)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == klass.__name__)
    found: dict[str, str] = {}
    previous: tuple[str, int] | None = None  # (name, last line) of the field just above
    for node in cls.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            previous = None
            continue
        name = node.target.id
        comment: list[str] = []
        index = node.lineno - 2
        while index >= 0 and lines[index].strip().startswith("#:"):
            comment.insert(0, lines[index].strip()[2:].strip())
            index -= 1
        if comment:
            found[name] = " ".join(comment)
        elif previous is not None and previous[1] == node.lineno - 1 and previous[0] in found:
            found[name] = found[previous[0]]
        previous = (name, node.end_lineno or node.lineno)
    return found


def _default(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, SecretStr):
        raw = value.get_secret_value()
        return (
            "(development value)" if raw in (INSECURE_SECRET_KEY, INSECURE_ENCRYPTION_KEY) else raw
        )
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _docs(model: type[BaseSettings], env: Callable[[str], str]) -> list[SettingDoc]:
    comments = _comments(model)
    docs = []
    for name, field in model.model_fields.items():
        if model is Settings and name == "connectors":
            continue  # given in code; each connector's settings have a section of their own
        docs.append(
            SettingDoc(
                name=name,
                env=env(name),
                default=_default(field.default),
                description=(field.description or comments.get(name, "")).replace("``", "`"),
                secret=field.annotation is SecretStr,
            )
        )
    return docs


def sections() -> list[Section]:
    """The product's settings, then one section per installed connector with settings."""
    out = [Section("", _docs(Settings, lambda name: f"CONEXAPI_{name.upper()}"))]
    for name, spec in sorted(all_connectors().items()):
        model: type[ConnectorSettings] | None = spec.settings
        if model is not None:
            out.append(Section(f"{spec.label or name} (`{name}`)", _docs(model, model.env_name)))
    return out


def settings_docs() -> list[SettingDoc]:
    return [doc for section in sections() for doc in section.docs]


def markdown_table() -> str:
    blocks = []
    for section in sections():
        rows = [f"**{section.title}**\n"] if section.title else []
        rows += ["| Variable | Default | What it does |", "|---|---|---|"]
        for doc in section.docs:
            default = f"`{doc.default}`" if doc.default else ""
            description = doc.description.replace("|", "\\|")
            rows.append(f"| `{doc.env}` | {default} | {description} |")
        blocks.append("\n".join(rows))
    return "\n\n".join(blocks)


def env_example() -> str:
    out = [
        "# ConexAPI configuration: copy to .env (or set in the environment) what you change.",
        "# With nothing set ConexAPI runs embedded: a SQLite file and no Redis.",
        "# Generated from conexapi/settings.py and the connectors' settings.py by `make docs`;",
        "# edit the descriptions there.",
    ]
    for section in sections():
        if section.title:
            out += ["", f"# --- {section.title.replace('`', '')} ---"]
        for doc in section.docs:
            out.append("")
            if doc.description:
                out.append(f"# {doc.description}")
            value = "" if doc.secret and doc.default.startswith("(") else doc.default
            out.append(f"# {doc.env}={value}")
    return "\n".join(out) + "\n"


def readme_with_table(readme: str) -> str:
    start, end = readme.index(README_START), readme.index(README_END)
    return readme[: start + len(README_START)] + "\n" + markdown_table() + "\n" + readme[end:]


def main(root: Path = ROOT) -> int:
    (root / ".env.example").write_text(env_example(), encoding="utf-8")
    readme = root / "README.md"
    readme.write_text(readme_with_table(readme.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
