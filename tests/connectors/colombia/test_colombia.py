"""Colombia's country rules: the DIAN check digit and DANE codes from free-text addresses."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.colombia import find_municipality, municipalities, nit_check_digit
from connectors.colombia.divipola import normalize

# The weights as printed on the DIAN's form, for a NIT padded to 15 digits, left to right.
_FORM_WEIGHTS = (71, 67, 59, 53, 47, 43, 41, 37, 29, 23, 19, 17, 13, 7, 3)


def _dv_as_on_the_form(nit: str) -> int:
    padded = nit.rjust(15, "0")
    r = sum(int(d) * w for d, w in zip(padded, _FORM_WEIGHTS, strict=True)) % 11
    return {0: 0, 1: 1}.get(r, 11 - r)


@pytest.mark.parametrize(
    ("nit", "dv"),
    [
        ("800197268", 4),  # DIAN
        ("890903938", 8),  # Bancolombia
        ("899999068", 1),  # Ecopetrol
        ("890900608", 9),  # Almacenes Éxito
        ("860034313", 7),  # Davivienda
    ],
)
def test_check_digit_of_known_nits(nit: str, dv: int) -> None:
    assert nit_check_digit(nit) == dv


@given(st.text(alphabet="0123456789", min_size=1, max_size=15))
def test_check_digit_matches_the_dian_form(nit: str) -> None:
    dv = nit_check_digit(nit)
    assert 0 <= dv <= 9
    assert dv == _dv_as_on_the_form(nit)


@pytest.mark.parametrize("bad", ["", "12a", "1234567890123456", "١٢٣", " 123", "-123", "12.345"])
def test_check_digit_refuses_what_is_not_a_nit(bad: str) -> None:
    with pytest.raises(ValueError, match="NIT"):
        nit_check_digit(bad)


def test_table_is_whole_and_unambiguous_by_pair() -> None:
    rows = municipalities()
    assert len(rows) == 1121
    assert len({m.state_code for m in rows}) == 33
    pairs = {(m.state_code, normalize(m.city_name)) for m in rows}
    assert len(pairs) == len(rows), "two municipalities of one department normalise alike"
    assert all(m.city_code.startswith(m.state_code) for m in rows)


_ACCENTED = {"A": "ÁÀ", "E": "ÉÈ", "I": "ÍÏ", "O": "ÓÖ", "U": "ÚÜ", "N": "Ñ"}


@st.composite
def spelled(draw: st.DrawFn, name: str) -> str:
    """``name`` as a person might type it: any case, accents added or not, spaces around."""
    out = []
    for ch in name:
        if ch in _ACCENTED and draw(st.booleans()):
            ch = draw(st.sampled_from(_ACCENTED[ch]))
        elif ch == "Ñ" and draw(st.booleans()):
            ch = "N"
        out.append(ch.lower() if draw(st.booleans()) else ch)
    return draw(st.sampled_from(["", " "])) + "".join(out) + draw(st.sampled_from(["", " ", "."]))


@given(st.data())
def test_any_pair_of_the_table_finds_its_codes(data: st.DataObject) -> None:
    m = data.draw(st.sampled_from(municipalities()))
    city = data.draw(spelled(m.city_name))
    state = data.draw(spelled(m.state_name))
    found = find_municipality(city, state)
    assert found is not None, (city, state)
    assert (found.state_code, found.city_code) == (m.state_code, m.city_code)


@pytest.mark.parametrize(
    ("city", "state", "code"),
    [
        ("Bogotá D.C.", "Bogotá D.C.", "11001"),
        ("Bogota", "Cundinamarca", "11001"),
        ("Medellín", "Antioquia", "05001"),
        ("Cali", "Valle", "76001"),
        ("Cartagena de Indias", "Bolívar", "13001"),
        ("San Andrés", "San Andrés y Providencia", "88001"),
        ("Rionegro", "Antioquia", "05615"),
        ("Rionegro", "Santander", "68615"),
        ("El Peñol", "Nariño", "52254"),
        ("Peñol", "Antioquia", "05541"),
    ],
)
def test_everyday_names(city: str, state: str, code: str) -> None:
    found = find_municipality(city, state)
    assert found is not None and found.city_code == code


@pytest.mark.parametrize(
    ("city", "state"),
    [
        ("Springfield", "Antioquia"),  # no such town
        ("Medellín", "Valle del Cauca"),  # a real town in the wrong department
        ("Rionegro", None),  # a shared name without its department
        ("", "Antioquia"),
        ("Medellín", "Atlantis"),
    ],
)
def test_no_guess_without_a_matching_pair(city: str, state: str | None) -> None:
    assert find_municipality(city, state) is None
