"""Generated Colombian buyers: CC consumers and NIT companies with their names, addresses and
the billing document Mercado Libre returns for them (null fields while it is processing)."""

from __future__ import annotations

import random
from typing import Any

FIRST_NAMES = (
    "Juan",
    "Carlos",
    "Andrés",
    "Luis",
    "Jorge",
    "Santiago",
    "Felipe",
    "Camilo",
    "Diego",
    "María",
    "Ana",
    "Laura",
    "Valentina",
    "Daniela",
    "Paula",
    "Carolina",
    "Natalia",
    "Sofía",
)
LAST_NAMES = (
    "Rodríguez",
    "Gómez",
    "González",
    "Martínez",
    "García",
    "López",
    "Hernández",
    "Sánchez",
    "Ramírez",
    "Pérez",
    "Díaz",
    "Torres",
    "Rojas",
    "Vargas",
    "Moreno",
    "Castro",
    "Ortiz",
)
COMPANY_WORDS = (
    "Distribuciones",
    "Comercializadora",
    "Inversiones",
    "Soluciones",
    "Suministros",
    "Tecnología",
    "Andina",
    "del Caribe",
    "Pacífico",
    "Integrales",
    "Global",
    "Express",
)
CITIES = (
    ("Bogotá D.C.", "Bogotá D.C."),
    ("Medellín", "Antioquia"),
    ("Cali", "Valle del Cauca"),
    ("Barranquilla", "Atlántico"),
    ("Cartagena de Indias", "Bolívar"),
    ("Bucaramanga", "Santander"),
    ("Pereira", "Risaralda"),
    ("Manizales", "Caldas"),
    ("Villavicencio", "Meta"),
    ("Pasto", "Nariño"),
)
STREETS = ("Calle", "Carrera", "Avenida", "Transversal", "Diagonal")


class Buyer:
    def __init__(self, rng: random.Random, nit: bool, processing: bool) -> None:
        self.id = rng.randrange(100_000_000, 2_999_999_999)
        city, state = rng.choice(CITIES)
        street = f"{rng.choice(STREETS)} {rng.randrange(1, 180)}"
        number = f"# {rng.randrange(1, 120)}-{rng.randrange(1, 99)}"
        self.billing_id = str(rng.randrange(10**17, 10**18))
        if nit:
            words = rng.sample(COMPANY_WORDS, 2)
            self.name = f"{words[0]} {words[1]} S.A.S."
            self.last_name = ""
            self.doc_type, self.cust_type = "NIT", "BU"
            self.doc_number = str(rng.randrange(800_000_000, 901_999_999))
            self.nickname = "".join(w[:4] for w in words).upper() + str(rng.randrange(10, 99))
        else:
            self.name = rng.choice(FIRST_NAMES)
            self.last_name = f"{rng.choice(LAST_NAMES)} {rng.choice(LAST_NAMES)}"
            self.doc_type, self.cust_type = "CC", "CO"
            # Older cédulas have 8 digits; recent ones 10 starting with 10.
            self.doc_number = (
                str(rng.randrange(10_000_000, 99_999_999))
                if rng.random() < 0.4
                else str(rng.randrange(1_000_000_000, 1_099_999_999))
            )
            self.nickname = (self.name[:4] + self.last_name.split()[0][:4]).upper() + str(
                rng.randrange(100, 999)
            )
        self.address = {
            "street_name": street,
            "street_number": number,
            "city_name": city,
            "state": {"name": state},
            "zip_code": None,
            "country_id": "CO",
        }
        self.processing = processing

    def billing_document(self, seller_id: int) -> dict[str, Any]:
        if self.processing:
            # While the fiscal document is PROCESSING the fields come back null.
            info: dict[str, Any] = {
                "name": None,
                "last_name": None,
                "identification": {"type": None, "number": None},
                "address": None,
                "attributes": {"cust_type": None},
                "taxes": None,
            }
        else:
            info = {
                "name": self.name,
                "last_name": self.last_name,
                "identification": {"type": self.doc_type, "number": self.doc_number},
                "address": dict(self.address),
                "attributes": {"cust_type": self.cust_type},
                "taxes": {
                    "taxpayer_type": {
                        "description": "Persona jurídica"
                        if self.cust_type == "BU"
                        else "Persona natural"
                    }
                },
            }
        return {
            "site_id": "MCO",
            "buyer": {"cust_id": self.id, "billing_info": info},
            "seller": {"id": seller_id},
        }
