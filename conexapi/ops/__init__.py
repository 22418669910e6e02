"""The ops API (``/api/v1``): watch every sync, retry what failed, each caller sees only theirs."""
