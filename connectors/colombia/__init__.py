"""Colombian rules shared by every connector that invoices in Colombia.

The DIAN's check digit of a NIT and the DANE's municipality codes (DIVIPOLA) are country
rules, not a marketplace's or an ERP's: Siigo, Alegra and any later ERP take the same codes.
"""

from connectors.colombia.dian import nit_check_digit
from connectors.colombia.divipola import Municipality, find_municipality, municipalities

__all__ = ["Municipality", "find_municipality", "municipalities", "nit_check_digit"]
