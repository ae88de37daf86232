"""Deterministic embedded demo repository: phantom CTs, radiographs, clinical table and reader scores.

Typical use::

    from kicc_analysis.demo import generate_demo
    manifest = generate_demo("demo_repository", n_patients=120, seed=19)

See docs/demo.md for the layout and the realism choices.
"""

from __future__ import annotations

from kicc_analysis.demo.generator import GENERATOR_VERSION, DemoManifest, generate_demo, load_manifest
from kicc_analysis.demo.phantom import ChestPhantom, Lesion, chest_phantom

__all__ = [
    "GENERATOR_VERSION",
    "ChestPhantom",
    "DemoManifest",
    "Lesion",
    "chest_phantom",
    "generate_demo",
    "load_manifest",
]
