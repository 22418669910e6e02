"""Placeholder until the siigo connector lands."""
