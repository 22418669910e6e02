"""Pluggable connectors: one package per external system, each with its sandbox."""
