"""Deterministic embedded demo repository: phantom CTs, radiographs, clinical table and reader scores.

Typical use::

    from kicc_analysis.demo import generate_demo
    manifest = generate_demo("demo_repository", seed=19)   # 522 patients, 17 sites (the published cohort)

See docs/demo.md for the layout and the realism choices.
"""

from __future__ import annotations

from kicc_analysis.demo.generator import (
    DEFAULT_PATIENTS,
    GENERATOR_VERSION,
    DemoManifest,
    DemoPlan,
    generate_demo,
    load_manifest,
    plan_demo,
)
from kicc_analysis.demo.phantom import ChestPhantom, Lesion, chest_phantom

__all__ = [
    "DEFAULT_PATIENTS",
    "GENERATOR_VERSION",
    "DemoPlan",
    "ChestPhantom",
    "DemoManifest",
    "Lesion",
    "chest_phantom",
    "generate_demo",
    "load_manifest",
    "plan_demo",
]
