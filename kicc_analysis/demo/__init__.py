"""Deterministic embedded demo repository (phantom CTs, radiographs, clinical table, reader scores)."""
