"""The ids the tests' world is made of. The tests define their own (the demo keeps its own
in ``conexapi/demo.py``): a test must not change meaning when the demo's script does."""

from __future__ import annotations

#: The marketplace application (its OAuth client id) and its secret.
APP_ID = "5503910054141466"
APP_SECRET = "demo-client-secret"
#: The seller whose orders the tests sync.
SELLER_ID = 468424240
#: The ERP company's API user and access key.
SIIGO_USER = "ventas@demo-merchant.co"
ACCESS_KEY = "ZGVtby1hY2Nlc3Mta2V5"
#: The SKUs the pipeline maps, and one nobody maps.
SKUS = ["CAM-ALG-M", "CAM-ALG-L", "TEN-RUN-42", "MORRAL-20L", "GORRA-NEG", "BOTELLA-1L"]
UNMAPPED_SKU = "MEDIAS-X3"
#: The ERP product that carries the shipping line.
SHIPPING_SKU = "ENVIO"
#: A generator mix whose orders are all paid.
PAID_ONLY = {"cancelled_rate": 0.0, "pending_rate": 0.0, "partially_paid_rate": 0.0}
