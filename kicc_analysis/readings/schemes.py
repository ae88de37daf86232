"""The one table of reader-scoring schemes (radiograph and CT): items, ranges, how totals are formed, citations.

Each :class:`Scheme` lists its scored items (each with an integer range) and its totals; a total is either the
sum of items (``rule="sum"``) or the sum of products of item pairs (``rule="sum_of_products"``, RALE). The table
form (:func:`scheme_table`, one row per item or total) is what the validator, the documentation and the notebooks
read.

==================  ============================================================================================
scheme              definition
==================  ============================================================================================
``brixia``          Brixia score, chest radiograph: six zones A-F (A, B, C = right lung upper, middle, lower; D, E,
                    F = left lung upper, middle, lower), each 0-3 (0 none, 1 interstitial, 2 interstitial and
                    alveolar with interstitial predominance, 3 alveolar predominance); total 0-18 (Borghesi &
                    Maroldi, Radiol Med 2020;125:509-513).
``rale``            RALE, chest radiograph: four quadrants (RUQ, RLQ, LUQ, LLQ), extent of consolidation 0-4 (0
                    none, 1 < 25 %, 2 25-50 %, 3 50-75 %, 4 > 75 %) times density 1-3 (hazy, moderate, dense);
                    total = sum of extent x density, 0-48 (Warren et al., Thorax 2018;73:840-846). Density may be
                    left out where the extent is 0.
``cohen``           Cohen et al. pneumonia severity, chest radiograph: per lung geographic extent 0-4 (0 none,
                    1 < 25 %, 2 25-50 %, 3 50-75 %, 4 > 75 %) and opacity 0-3 (0 none, 1 ground glass, 2
                    consolidation, 3 white-out); totals extent 0-8 and opacity 0-6 (Cohen et al., Cureus
                    2020;12:e9448, after Wong et al., Radiology 2020;296:E72-E78).
``ct_lobe``         CT visual severity per lobe (RUL, RML, RLL, LUL, LLL) 0-5 (0 none, 1 < 5 %, 2 5-25 %, 3 26-49
                    %, 4 50-75 %, 5 > 75 %), total 0-25 (Pan et al., Radiology 2020;295:715-721; Chung et al.,
                    Radiology 2020;295:202-207). The involvement cut-offs used for automatic CT scores live in
                    the quantification layer (``kicc_analysis.quantification``), not here.
``ct_suspicion``    5-level categorical suspicion of COVID-19 pneumonia on CT, 1 very low ... 5 very high
                    (CO-RADS-like; Prokop et al., Radiology 2020;296:E97-E104); no total.
``rsna_ct``         RSNA expert consensus CT category: ``category`` 0 negative, 1 atypical, 2 indeterminate, 3
                    typical appearance of COVID-19 pneumonia (Simpson et al., Radiol Cardiothorac Imaging
                    2020;2:e200152); codes ordered by likelihood of COVID-19; no total.
``co_rads``         CO-RADS 1-5 (1 very low ... 5 very high level of suspicion; Prokop et al. 2020). CO-RADS 0 (not
                    interpretable) and 6 (PCR-proven) are not reading categories here: record them as missing.
``ct_findings``     Structured CT findings, one item each: presence (0 absent, 1 present) of ground-glass opacity
                    (``ggo``), ``consolidation``, ``crazy_paving``, ``reticulation``, ``reversed_halo``,
                    ``air_bronchogram``, ``vascular_enlargement``, ``pleural_effusion``, ``lymphadenopathy``
                    (Fleischner glossary terms, Hansell et al., Radiology 2008;246:697-722); distribution:
                    ``axial_distribution`` 0 none, 1 peripheral, 2 central, 3 diffuse; ``lower_zone`` 0/1 (lower-zone
                    predominance); ``laterality`` 0 none, 1 unilateral, 2 bilateral; ``lobes_involved`` 0-5. No
                    total. Consistency of the items (e.g. a finding with 0 lobes) is checked by
                    :func:`kicc_analysis.findings.finding_problems`.
==================  ============================================================================================

Examples
--------
>>> SCHEMES["brixia"].items
('A', 'B', 'C', 'D', 'E', 'F')
>>> SCHEMES["rale"].total_range("total")
(0, 48)
>>> scheme_table().query("scheme == 'cohen' and kind == 'total'")[["item", "min", "max"]].to_numpy().tolist()
[['extent_total', 0, 8], ['opacity_total', 0, 6]]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from kicc_analysis.errors import ReadingsError

__all__ = ["FINDING_ITEMS", "SCHEMES", "Item", "Scheme", "Total", "get_scheme", "scheme_table"]


@dataclass(frozen=True)
class Item:
    """One scored item (a zone, a quadrant component, a lobe...)."""

    name: str
    min: int
    max: int
    description: str
    optional_when_zero: str = ""  # the item may be absent when this other item is 0 (RALE density vs extent)
    levels: tuple[str, ...] = ()  # names of the codes min..max for categorical items (empty: a graded score)

    def level(self, code: int) -> str:
        """Name of the code ``code`` (the code itself as text when the item has no named levels)."""
        if self.levels and self.min <= code <= self.max:
            return self.levels[int(code) - self.min]
        return str(code)


@dataclass(frozen=True)
class Total:
    """A total formed from items: ``sum`` of ``parts`` or ``sum_of_products`` of the ``pairs``."""

    name: str
    rule: str
    parts: tuple[str, ...] = ()
    pairs: tuple[tuple[str, str], ...] = ()
    description: str = ""


@dataclass(frozen=True)
class Scheme:
    """A reader-scoring scheme: its items, totals, modality and citation."""

    name: str
    title: str
    modality: str
    item_list: tuple[Item, ...]
    totals: tuple[Total, ...] = ()
    citation: str = ""
    notes: str = ""
    aliases: tuple[str, ...] = field(default=())

    @property
    def items(self) -> tuple[str, ...]:
        """Names of the scored items, in order."""
        return tuple(item.name for item in self.item_list)

    def item(self, name: str) -> Item:
        """The item called ``name``."""
        for item in self.item_list:
            if item.name == name:
                return item
        raise ReadingsError(f"scheme {self.name}: no item {name!r} (items: {', '.join(self.items)})")

    def total(self, name: str) -> Total:
        """The total called ``name``."""
        for total in self.totals:
            if total.name == name:
                return total
        raise ReadingsError(f"scheme {self.name}: no total {name!r} (totals: {[t.name for t in self.totals]})")

    def total_range(self, name: str) -> tuple[int, int]:
        """(min, max) a total can take."""
        total = self.total(name)
        if total.rule == "sum":
            return (sum(self.item(p).min for p in total.parts), sum(self.item(p).max for p in total.parts))
        low = sum(min(self.item(a).min * self.item(b).min, 0) for a, b in total.pairs)
        return (low, sum(self.item(a).max * self.item(b).max for a, b in total.pairs))

    def compute_total(self, name: str, scores: dict[str, float]) -> float:
        """A total from a dict item -> score (NaN when a needed item is missing)."""
        total = self.total(name)
        if total.rule == "sum":
            values = [scores.get(p, float("nan")) for p in total.parts]
            return float(sum(values))
        out = 0.0
        for a, b in total.pairs:
            extent = scores.get(a, float("nan"))
            if extent == 0:
                continue
            out += extent * scores.get(b, float("nan"))
        return out


_EXTENT_4 = "0 none, 1 <25 %, 2 25-50 %, 3 50-75 %, 4 >75 %"
_BRIXIA_ZONE = "0 none, 1 interstitial, 2 interstitial+alveolar (interstitial predominant), 3 alveolar predominant"
_LOBE_5 = "0 none, 1 <5 %, 2 5-25 %, 3 26-49 %, 4 50-75 %, 5 >75 % of the lobe"
_BRIXIA_ZONES = {
    "A": "right upper zone (above the lower border of the aortic arch)",
    "B": "right middle zone (aortic arch to right inferior pulmonary vein)",
    "C": "right lower zone (below the right inferior pulmonary vein)",
    "D": "left upper zone",
    "E": "left middle zone",
    "F": "left lower zone",
}
_RALE_QUADRANTS = {
    "RUQ": "right upper quadrant",
    "RLQ": "right lower quadrant",
    "LUQ": "left upper quadrant",
    "LLQ": "left lower quadrant",
}
_LOBES = {"RUL": "right upper lobe", "RML": "right middle lobe", "RLL": "right lower lobe", "LUL": "left upper lobe",
          "LLL": "left lower lobe"}  # fmt: skip

#: presence items of the ``ct_findings`` scheme and their Fleischner-glossary names
FINDING_ITEMS: dict[str, str] = {
    "ggo": "ground-glass opacity",
    "consolidation": "consolidation",
    "crazy_paving": "crazy-paving pattern",
    "reticulation": "reticulation (interlobular septal thickening / reticular pattern)",
    "reversed_halo": "reversed halo (atoll) sign",
    "air_bronchogram": "air bronchogram",
    "vascular_enlargement": "vascular enlargement within opacities",
    "pleural_effusion": "pleural effusion",
    "lymphadenopathy": "mediastinal lymphadenopathy (short axis > 10 mm)",
}

SCHEMES: dict[str, Scheme] = {
    "brixia": Scheme(
        name="brixia",
        title="Brixia score",
        modality="CXR",
        item_list=tuple(Item(z, 0, 3, f"{d}: {_BRIXIA_ZONE}") for z, d in _BRIXIA_ZONES.items()),
        totals=(Total("total", "sum", tuple(_BRIXIA_ZONES), description="sum of zones A-F (0-18)"),),
        citation="Borghesi A, Maroldi R. COVID-19 outbreak in Italy: experimental chest X-ray scoring system for "
        "quantifying and monitoring disease progression. Radiol Med 2020;125:509-513",
        notes="Zones: two horizontal lines (lower border of the aortic arch, right inferior pulmonary vein) divide "
        "each lung in three on the frontal (PA/AP) view.",
    ),
    "rale": Scheme(
        name="rale",
        title="Radiographic Assessment of Lung Edema (RALE)",
        modality="CXR",
        item_list=tuple(
            item
            for q, d in _RALE_QUADRANTS.items()
            for item in (
                Item(f"{q}_extent", 0, 4, f"{d}, extent of consolidation: {_EXTENT_4}"),
                Item(f"{q}_density", 1, 3, f"{d}, density: 1 hazy, 2 moderate, 3 dense", f"{q}_extent"),
            )
        ),
        totals=(
            Total(
                "total",
                "sum_of_products",
                pairs=tuple((f"{q}_extent", f"{q}_density") for q in _RALE_QUADRANTS),
                description="sum over quadrants of extent x density (0-48)",
            ),
        ),
        citation="Warren MA, Zhao Z, Koyama T, et al. Severity scoring of lung oedema on the chest radiograph is "
        "associated with clinical outcomes in ARDS. Thorax 2018;73:840-846",
        notes="Quadrants: vertical division by the spine, horizontal by the first branch of the left main bronchus.",
    ),
    "cohen": Scheme(
        name="cohen",
        title="Pneumonia severity: geographic extent and opacity (Cohen et al.)",
        modality="CXR",
        item_list=(
            Item("right_extent", 0, 4, f"right lung geographic extent of GGO/consolidation: {_EXTENT_4}"),
            Item("left_extent", 0, 4, f"left lung geographic extent of GGO/consolidation: {_EXTENT_4}"),
            Item("right_opacity", 0, 3, "right lung opacity: 0 none, 1 ground glass, 2 consolidation, 3 white-out"),
            Item("left_opacity", 0, 3, "left lung opacity: 0 none, 1 ground glass, 2 consolidation, 3 white-out"),
        ),
        totals=(
            Total("extent_total", "sum", ("right_extent", "left_extent"), description="geographic extent (0-8)"),
            Total("opacity_total", "sum", ("right_opacity", "left_opacity"), description="opacity (0-6)"),
        ),
        citation="Cohen JP, Dao L, Roth K, et al. Predicting COVID-19 pneumonia severity on chest X-ray with deep "
        "learning. Cureus 2020;12(7):e9448 (score after Wong HYF et al., Radiology 2020;296:E72-E78)",
        notes="The public data set gives only the mean of three readers' totals (rounded to 0.1).",
    ),
    "ct_lobe": Scheme(
        name="ct_lobe",
        title="CT visual severity score per lobe",
        modality="CT",
        item_list=tuple(Item(lobe, 0, 5, f"{d}: {_LOBE_5}") for lobe, d in _LOBES.items()),
        totals=(Total("total", "sum", tuple(_LOBES), description="sum of the five lobes (0-25)"),),
        citation="Pan F, Ye T, Sun P, et al. Time course of lung changes on chest CT during recovery from 2019 "
        "novel coronavirus (COVID-19) pneumonia. Radiology 2020;295:715-721; Chung M, et al. Radiology "
        "2020;295:202-207",
        notes="Automatic per-lobe scores use the involvement cut-offs of the quantification layer "
        "(kicc_analysis.quantification); this table defines the reader item, not the cut-offs.",
    ),
    "ct_suspicion": Scheme(
        name="ct_suspicion",
        title="CT suspicion of COVID-19 pneumonia (5 levels)",
        modality="CT",
        item_list=(Item("suspicion", 1, 5, "1 very low, 2 low, 3 equivocal, 4 high, 5 very high suspicion"),),
        citation="Prokop M, van Everdingen W, van Rees Vellinga T, et al. CO-RADS: a categorical CT assessment "
        "scheme for patients suspected of having COVID-19. Radiology 2020;296:E97-E104",
    ),
}

SCHEMES.update(
    {
        "rsna_ct": Scheme(
            name="rsna_ct",
            title="RSNA expert consensus CT category",
            modality="CT",
            item_list=(
                Item(
                    "category",
                    0,
                    3,
                    "0 negative, 1 atypical, 2 indeterminate, 3 typical appearance for COVID-19 pneumonia",
                    levels=("negative", "atypical", "indeterminate", "typical"),
                ),
            ),  # fmt: skip
            citation="Simpson S, Kay FU, Abbara S, et al. Radiological Society of North America expert consensus "
            "statement on reporting chest CT findings related to COVID-19. Radiol Cardiothorac Imaging "
            "2020;2:e200152",
            notes="Codes ordered by the likelihood of COVID-19 (the statement lists typical first).",
        ),
        "co_rads": Scheme(
            name="co_rads",
            title="CO-RADS",
            modality="CT",
            item_list=(
                Item(
                    "co_rads",
                    1,
                    5,
                    "level of suspicion: 1 very low, 2 low, 3 equivocal, 4 high, 5 very high",
                    levels=("CO-RADS 1", "CO-RADS 2", "CO-RADS 3", "CO-RADS 4", "CO-RADS 5"),
                ),
            ),  # fmt: skip
            citation="Prokop M, van Everdingen W, van Rees Vellinga T, et al. CO-RADS: a categorical CT assessment "
            "scheme for patients suspected of having COVID-19. Radiology 2020;296:E97-E104",
            notes="CO-RADS 0 (scan not interpretable) and 6 (PCR-proven) are recorded as missing, not as a code.",
        ),
        "ct_findings": Scheme(
            name="ct_findings",
            title="Structured CT findings of COVID-19 pneumonia",
            modality="CT",
            item_list=(
                *(
                    Item(name, 0, 1, f"{text}: 0 absent, 1 present", levels=("absent", "present"))
                    for name, text in FINDING_ITEMS.items()
                ),
                Item(
                    "axial_distribution",
                    0,
                    3,
                    "axial distribution: 0 none, 1 peripheral, 2 central, 3 diffuse",
                    levels=("none", "peripheral", "central", "diffuse"),
                ),
                Item("lower_zone", 0, 1, "lower-zone predominance: 0 no, 1 yes", levels=("no", "yes")),
                Item(
                    "laterality", 0, 2, "0 none, 1 unilateral, 2 bilateral", levels=("none", "unilateral", "bilateral")
                ),
                Item("lobes_involved", 0, 5, "number of lobes with any finding of pneumonia (0-5)"),
            ),  # fmt: skip
            citation="Hansell DM, Bankier AA, MacMahon H, et al. Fleischner Society: glossary of terms for thoracic "
            "imaging. Radiology 2008;246:697-722; Simpson S, et al. Radiol Cardiothorac Imaging 2020;2:e200152",
            notes="Presence items are 0/1; distribution items describe the parenchymal findings as a whole.",
        ),
    }
)


def get_scheme(name: str) -> Scheme:
    """The scheme called ``name`` (case-insensitive).

    Raises
    ------
    ReadingsError
        Unknown scheme (the message lists the known ones).
    """
    key = str(name).strip().lower()
    if key not in SCHEMES:
        raise ReadingsError(f"unknown scoring scheme {name!r}; known schemes: {', '.join(SCHEMES)}")
    return SCHEMES[key]


def scheme_table() -> pd.DataFrame:
    """All schemes as one table: ``scheme, title, modality, kind (item/total), item, min, max, rule, levels,
    description, citation`` (``levels``: the named codes of a categorical item, e.g. ``0 absent; 1 present``)."""
    rows = []
    for scheme in SCHEMES.values():
        for item in scheme.item_list:
            rows.append(
                {
                    "scheme": scheme.name,
                    "title": scheme.title,
                    "modality": scheme.modality,
                    "kind": "item",
                    "item": item.name,
                    "min": item.min,
                    "max": item.max,
                    "rule": f"optional when {item.optional_when_zero} = 0" if item.optional_when_zero else "",
                    "levels": "; ".join(f"{item.min + i} {name}" for i, name in enumerate(item.levels)),
                    "description": item.description,
                    "citation": scheme.citation,
                }
            )
        for total in scheme.totals:
            low, high = scheme.total_range(total.name)
            rows.append(
                {
                    "scheme": scheme.name,
                    "title": scheme.title,
                    "modality": scheme.modality,
                    "kind": "total",
                    "item": total.name,
                    "min": low,
                    "max": high,
                    "rule": total.rule,
                    "levels": "",
                    "description": total.description,
                    "citation": scheme.citation,
                }
            )
    return pd.DataFrame(rows)
