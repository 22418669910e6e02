"""What the tests share across folders, and the only test package they import from another
folder (``tests/test_layout.py`` checks it).

- ``ids``: the test world's ids (app, seller, company, SKUs); the tests' own, not the demo's.
- ``auth``: admin keys, users, logins and scoped keys for an app under test.
- ``seed``: a merchant, both connections linked through the product's endpoints, a pipeline
  and generated orders (plain async functions).
- ``world``: one merchant's pipeline in this process (SQLite, sandboxes over ASGI, no broker).
- ``stack``: the whole product on this machine (uvicorn threads, real worker processes).
- ``jobs``: a job sender that records what it was asked to send.

A helper used by one folder only stays in that folder (``tests/connections/flow.py``,
``tests/ops/world.py``, ``tests/connectors/contract_*.py``...).
"""
