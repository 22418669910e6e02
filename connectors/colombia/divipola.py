"""DANE municipality codes (DIVIPOLA) matched from an address's city and department.

``divipola.csv`` beside this module is DANE's DIVIPOLA as updated on 30 November 2020
(33 departments, Bogotá D.C. counted as one, and 1,121 municipalities), names in upper case
without accents; these are the codes ERPs take for a customer's address (Siigo's
``address.city.state_code`` / ``city_code``: 11 / 11001 Bogotá, 05 / 05001 Medellín).

Marketplaces give free-text names ("Bogotá D.C.", "medellin", "Valle"). We compare names
with accents, case and punctuation removed, and always on the (city, department) pair,
since 68 municipality names are shared by several departments. A few everyday names that
differ from the official one are listed in ``_CITY_ALIASES`` / ``_STATE_ALIASES``; anything
else that does not match is left for the caller to flag, never guessed.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True, slots=True)
class Municipality:
    state_code: str  # 2 digits
    state_name: str
    city_code: str  # 5 digits, starting with the state code
    city_name: str


_NON_ALNUM = re.compile(r"[^A-Z0-9]+")
# Words that decorate a name without telling it apart: "Departamento del Valle", "D.C.".
_PREFIXES = ("DEPARTAMENTO DEL ", "DEPARTAMENTO DE ", "DEPTO DE ", "MUNICIPIO DE ")
_SUFFIXES = (" D C", " DC", " DISTRITO CAPITAL")


def normalize(name: str) -> str:
    """Upper case, no accents (Ñ → N too), punctuation as spaces, decorations removed."""
    folded = unicodedata.normalize("NFKD", name)
    plain = "".join(ch for ch in folded if not unicodedata.combining(ch)).upper()
    text = _NON_ALNUM.sub(" ", plain).strip()
    for prefix in _PREFIXES:
        if text.startswith(prefix):
            text = text[len(prefix) :]
    for suffix in _SUFFIXES:
        if text.endswith(suffix):
            text = text[: -len(suffix)]
    return text.strip()


# Everyday names of departments, normalised → state code.
_STATE_ALIASES = {
    "BOGOTA": "11",
    "SAN ANDRES": "88",
    "SAN ANDRES Y PROVIDENCIA": "88",
    "SAN ANDRES PROVIDENCIA Y SANTA CATALINA": "88",
    "VALLE": "76",
    "GUAJIRA": "44",
    "NORTE SANTANDER": "54",
}
# Everyday names of municipalities, (state code, normalised name) → city code.
_CITY_ALIASES = {
    ("11", "BOGOTA"): "11001",
    ("13", "CARTAGENA DE INDIAS"): "13001",
    ("13", "MOMPOX"): "13468",
    ("54", "SAN JOSE DE CUCUTA"): "54001",
    ("52", "TUMACO"): "52835",
    ("76", "BUGA"): "76111",
    ("70", "TOLU"): "70820",
    ("25", "UBATE"): "25843",
}
# Bogotá is a district of its own, but addresses often put it in Cundinamarca.
_CITY_IN_OTHER_STATE = {("25", "BOGOTA"): "11001"}


@cache
def municipalities() -> tuple[Municipality, ...]:
    """Every municipality of the table, in its order."""
    text = resources.files(__package__).joinpath("divipola.csv").read_text("utf-8")
    return tuple(Municipality(**row) for row in csv.DictReader(text.splitlines()))


@cache
def _index() -> tuple[dict[str, str], dict[tuple[str, str], Municipality]]:
    states: dict[str, str] = dict(_STATE_ALIASES)
    by_pair: dict[tuple[str, str], Municipality] = {}
    by_code = {m.city_code: m for m in municipalities()}
    for m in municipalities():
        states[normalize(m.state_name)] = m.state_code
        by_pair[(m.state_code, normalize(m.city_name))] = m
    for (state, city), code in (_CITY_ALIASES | _CITY_IN_OTHER_STATE).items():
        by_pair.setdefault((state, city), by_code[code])
    return states, by_pair


def find_municipality(city: str | None, state: str | None) -> Municipality | None:
    """The municipality named by ``city`` in the department ``state``, or None.

    Both names are needed: a city alone is ambiguous for 68 names, and a wrong code on an
    electronic invoice is worse than the caller's visible default.
    """
    if not city or not state:
        return None
    states, by_pair = _index()
    state_code = states.get(normalize(state))
    if state_code is None:
        return None
    return by_pair.get((state_code, normalize(city)))
