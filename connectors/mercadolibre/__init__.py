"""Placeholder until the mercadolibre connector lands."""
