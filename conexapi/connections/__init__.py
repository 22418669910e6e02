"""Linked accounts: consent and credentials in, valid tokens out, secrets encrypted at rest."""
