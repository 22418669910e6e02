"""The seller's built-in catalogue for generated orders: Colombian products priced before
IVA, shown and charged IVA-inclusive in whole pesos as Mercado Libre does."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal


@dataclass(frozen=True)
class CatalogueItem:
    sku: str
    title: str
    #: Price before IVA, in pesos.
    net_price: Decimal
    iva_rate: Decimal = Decimal("0.19")
    category_id: str = "MCO1747"

    @property
    def price(self) -> Decimal:
        """The price Mercado Libre shows and charges: IVA included, whole pesos."""
        return iva_inclusive(self.net_price, self.iva_rate)


def iva_inclusive(net: Decimal, rate: Decimal) -> Decimal:
    return (net * (1 + rate)).quantize(Decimal(1), rounding=ROUND_HALF_UP)


DEFAULT_CATALOGUE: tuple[CatalogueItem, ...] = (
    CatalogueItem(
        "AUD-BT-500",
        "Audífonos Bluetooth Inalámbricos Bt500",
        Decimal(75546),
        category_id="MCO3697",
    ),
    CatalogueItem(
        "CAF-MOL-250", "Café Molido Origen Huila 250 g", Decimal(18000), Decimal("0.05"), "MCO1403"
    ),
    CatalogueItem(
        "TEC-MEC-RGB",
        "Teclado Mecánico Rgb Switch Rojo Español",
        Decimal(159580),
        category_id="MCO1714",
    ),
    CatalogueItem(
        "MOU-INL-01",
        "Mouse Inalámbrico Ergonómico Recargable",
        Decimal(41933),
        category_id="MCO1714",
    ),
    CatalogueItem(
        "CAM-ALG-M", "Camiseta Algodón Hombre Cuello Redondo", Decimal(29328), category_id="MCO1430"
    ),
    CatalogueItem(
        "ZAP-RUN-42", "Zapatillas Running Hombre Talla 42", Decimal(167143), category_id="MCO1430"
    ),
    CatalogueItem(
        "LIC-500W", "Licuadora 500 W Vaso De Vidrio 1.5 L", Decimal(125966), category_id="MCO5726"
    ),
    CatalogueItem(
        "OLL-PRE-6L",
        "Olla A Presión 6 Litros Acero Inoxidable",
        Decimal(142773),
        category_id="MCO1574",
    ),
    CatalogueItem(
        "CAR-USBC-20W", "Cargador Usb-c 20 W Carga Rápida", Decimal(33529), category_id="MCO3813"
    ),
    CatalogueItem(
        "TER-ACE-1L", "Termo Acero Inoxidable 1 Litro", Decimal(50336), category_id="MCO1574"
    ),
    CatalogueItem(
        "MOR-ESC-15",
        "Morral Escolar Impermeable 15 Pulgadas",
        Decimal(71345),
        category_id="MCO3937",
    ),
    CatalogueItem(
        "SMW-FIT-P8",
        "Reloj Inteligente Smartwatch P8 Deportivo",
        Decimal(109160),
        category_id="MCO3697",
    ),
)
