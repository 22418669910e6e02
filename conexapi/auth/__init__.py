"""Who is calling the ops API: users (password, JWT) and API keys, with roles and scopes."""
