"""Property test: scans of generated hostile repositories never raise and account for every entry on disk.

Each example mixes the bad inputs of issue 11 (truncated and empty files, EUC-KR file and folder names, FIFOs,
symlinks to files/folders/nowhere/the root, a deflate bomb, index folders, deep nesting, duplicates, unreadable
folders) with odd files from the data folder of the installed pydicom wheel (listed on disk; pydicom's
``get_testdata_file`` would download missing files and is never called). For every scan, first and re-scan, with
GNU find or the Python walk, following symlinks or not: no exception, files on disk = indexed + skipped
(:func:`conftest.assert_scan_accounts_for_every_entry`), nothing written into the repository, and every check of
:data:`DERIVED_FILE_CHECKS` holds on every derived file.

Every example also plants identifiers (:func:`identities`: Hangul and Latin names in their DICOM and file-name
forms, hospital IDs, RRN-like ``YYMMDD-NNNNNNN`` numbers, Korean mobile numbers) in headers (PatientID, PatientName,
study and series descriptions), folder names and file names, and checks that none of them appears in any derived
file (the cache), in the tables ``kicc scan --out`` writes, in the summary, the warnings, the log (caplog) or the
printed output (capsys).
"""

from __future__ import annotations

import ast
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pandas as pd
import pydicom
import pytest
from conftest import PROJECT_ROOT, checked_scan
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kicc_analysis.privacy import KOREAN_SURNAMES_SINGLE, assert_no_identifiers
from kicc_analysis.repository.synthetic import write_deflated_bomb, write_identified_copy, write_scanner_like_tree

PYDICOM_DATA = Path(pydicom.__file__).parent / "data" / "test_files"
WHEEL_FILES = sorted(p for p in PYDICOM_DATA.rglob("*") if p.is_file()) if PYDICOM_DATA.is_dir() else []

#: Checks run on the derived files of every generated scan: ``check(derived_files, repository_root)`` raises
#: AssertionError on a problem. Other areas add theirs here (e.g. no planted identifier in any derived file).
DERIVED_FILE_CHECKS: list[Callable[[list[Path], Path], None]] = []


def _derived_outside_repository(derived: list[Path], root: Path) -> None:
    assert derived, "a scan with an index writes derived files"
    assert not any(root in p.parents for p in derived), "derived file inside the repository"


DERIVED_FILE_CHECKS.append(_derived_outside_repository)


@pytest.fixture(scope="module")
def material(tmp_path_factory) -> dict[str, Path | list[Path]]:
    folder = tmp_path_factory.mktemp("material")
    paths = write_scanner_like_tree(folder / "ct", 30, seed=11, slices_per_series=(10, 11), radiograph_fraction=0.1)
    bomb = write_deflated_bomb(folder / "bomb.dcm", 24 << 20)
    return {"ct": sorted(paths), "bomb": bomb}


def _put(dst: Path | bytes, src: Path) -> None:
    shutil.copyfile(src, dst)


def _build(root: Path, case: str, k: int, material: dict) -> None:
    """Write one hostile case ``k`` under ``root``."""
    ct: list[Path] = material["ct"]
    src = ct[k % len(ct)]
    here = root / f"c{k:02d}"
    here.mkdir()
    broot = os.fsencode(here)
    if case == "ct":
        _put(here / src.name, src)
    elif case == "duplicate":
        _put(here / "a.dcm", src)
        _put(here / "b.dcm", src)
    elif case == "truncated":
        data = src.read_bytes()
        (here / "cut.dcm").write_bytes(data[: max(1, len(data) * (k % 7 + 1) // 9)])
    elif case == "empty":
        (here / "empty.dcm").write_bytes(b"")
    elif case == "text":
        (here / "notes.txt").write_text("환자 메모", encoding="cp949")
    elif case == "euc_kr_name":
        _put(os.path.join(broot, f"환자_{k}.dcm".encode("euc-kr")), src)
    elif case == "euc_kr_folder":
        sub = os.path.join(broot, "흉부 CT".encode("euc-kr"))
        os.mkdir(sub)
        _put(os.path.join(sub, b"IM0001"), src)
    elif case == "fifo":
        os.mkfifo(here / "pipe")
    elif case == "link_file":
        (here / "link.dcm").symlink_to(src)
    elif case == "link_folder":
        (here / "linked").symlink_to(src.parent, target_is_directory=True)
    elif case == "broken_link":
        (here / "gone.dcm").symlink_to(here / "nothing")
    elif case == "loop":
        (here / "up").symlink_to(root, target_is_directory=True)
        (here / "self").symlink_to(here / "self")
    elif case == "bomb":
        _put(here / "bomb.dcm", material["bomb"])
    elif case == "index_folder":
        (here / ".kicc_index").mkdir()
        (here / ".kicc_index" / "files.parquet").write_bytes(b"old")
    elif case == "deep":
        deep = here.joinpath(*[f"d{i}" for i in range(25)])
        deep.mkdir(parents=True)
        _put(deep / "x", src)
    elif case == "unreadable_folder":
        (here / "locked").mkdir()
        _put(here / "locked" / "x.dcm", src)
        (here / "locked").chmod(0)  # root still reads it; other users get the "unreadable folder" entry
    else:  # pragma: no cover
        raise AssertionError(case)


CASES = (
    "ct duplicate truncated empty text euc_kr_name euc_kr_folder fifo link_file link_folder broken_link loop bomb "
    "index_folder deep unreadable_folder"
).split()


def _unlock(root: Path) -> None:
    for dirpath, dirnames, _ in os.walk(root):
        for d in dirnames:
            p = os.path.join(dirpath, d)
            if not os.path.islink(p):
                os.chmod(p, 0o755)


# ----------------------------------------------------------------------------------------------------------------------
# Planted identifiers

_SURNAMES = sorted(KOREAN_SURNAMES_SINGLE)[:60]
_GIVEN_SYLLABLES = "민서준지우현도하윤수영재성진혜은경아름빛솔"
_LATIN_FAMILY = ("Hong", "Kim", "Lee", "Park", "Choi", "Jung", "Kang", "Yoon")
_LATIN_GIVEN = ("Gildong", "Minsu", "Jiwoo", "Seoyeon", "Hyunwoo", "Eunji", "Dohyun", "Sumin")
_PLACES = ("folder_name", "folder_id", "file_name", "file_rrn", "file_phone", "desc_name", "desc_rrn", "desc_phone")


@st.composite
def identities(draw) -> dict:
    """One patient's identifiers and where they are planted (at least one place besides the PatientID)."""
    if draw(st.booleans()):
        family = draw(st.sampled_from(_SURNAMES))
        given = "".join(draw(st.lists(st.sampled_from(_GIVEN_SYLLABLES), min_size=1, max_size=2)))
        name, dicom_name = family + given, f"{family}^{given}"
    else:
        family, given = draw(st.sampled_from(_LATIN_FAMILY)), draw(st.sampled_from(_LATIN_GIVEN))
        form = draw(st.sampled_from(["{g} {f}", "{g}_{f}", "{F}^{G}", "{f}^{g}"]))
        name = form.format(f=family, g=given, F=family.upper(), G=given.upper())
        dicom_name = f"{family.upper()}^{given.upper()}"
    born = draw(st.dates(min_value=date(1930, 1, 1), max_value=date(2019, 12, 31)))
    digit = draw(st.sampled_from([1, 2] if born.year < 2000 else [3, 4]))
    rrn = f"{born:%y%m%d}-{digit}{draw(st.integers(0, 999_999)):06d}"
    phone = f"010-{draw(st.integers(1000, 9999))}-{draw(st.integers(1000, 9999))}"
    return {
        "hospital_id": str(draw(st.integers(20_000_000, 99_999_999))),  # a hospital ID: not a pseudonym
        "name": name,
        "dicom_name": dicom_name,
        "rrn": rrn,
        "phone": phone,
        "places": draw(st.sets(st.sampled_from(_PLACES), min_size=1)),
    }


def _plant(root: Path, people: list[dict], material: dict) -> list[str]:
    """Write one or two CT copies per person with their identifiers planted; return every planted value."""
    from pydicom.uid import generate_uid

    planted = []
    for k, person in enumerate(people):
        places = person["places"]
        folder_parts = [person["name"]] if "folder_name" in places else [f"P{k}"]
        folder_parts += [person["hospital_id"]] if "folder_id" in places else []
        folder = root / "export" / "_".join(folder_parts) / "CT"
        folder.mkdir(parents=True, exist_ok=True)
        names = [
            f"{person[key]}.dcm" for key, place in (("name", "file_name"), ("rrn", "file_rrn"), ("phone", "file_phone"))
            if place in places
        ] or ["IM1.dcm"]  # fmt: skip
        description = " ".join(
            person[key] for key, place in (("name", "desc_name"), ("rrn", "desc_rrn"), ("phone", "desc_phone"))
            if place in places
        )  # fmt: skip
        for i, file_name in enumerate(names):
            write_identified_copy(
                material["ct"][(3 * k + i) % len(material["ct"])],
                folder / file_name,
                patient_id=person["hospital_id"],
                patient_name=person["dicom_name"],
                study_description=f"Chest {description}".strip(),
                series_description=f"CT {description}".strip(),
                sop_uid=generate_uid(entropy_srcs=[person["hospital_id"], file_name]),
            )
        planted += [person[key] for key in ("hospital_id", "name", "dicom_name", "rrn", "phone")]
    return planted


def _assert_none_planted(planted: list[str], content: str | bytes, where: str) -> None:
    assert_no_identifiers(content, known_values=planted, where=where, patterns=False)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cases=st.lists(st.sampled_from(CASES), min_size=1, max_size=10),
    wheel=st.lists(st.sampled_from(WHEEL_FILES or [Path(__file__)]), max_size=8, unique=True),
    walker=st.sampled_from(["find", "python"]),
    follow=st.booleans(),
    people=st.lists(identities(), min_size=1, max_size=3),
)
def test_hostile_repositories_are_scanned_and_fully_accounted_for(
    material, monkeypatch, caplog, capsys, cases, wheel, walker, follow, people
):
    monkeypatch.setenv("KICC_SCAN_WALK", walker)
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "repo"
        root.mkdir()
        for k, case in enumerate(cases):
            _build(root, case, k, material)
        (root / "wheel").mkdir()
        for i, f in enumerate(wheel):
            _put(root / "wheel" / f"{i}_{f.name}", f)
        planted = _plant(root, people, material)
        before = sorted(os.fsencode(p) for p in root.rglob("*"))
        index = Path(tmp) / "index"
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                first = checked_scan(root, workers=1, index_dir=index, follow_symlinks=follow)
                again = checked_scan(root, workers=1, index_dir=index, follow_symlinks=follow)
        finally:
            _unlock(root)
        assert again.n_read == 0
        # a hospital ID that happens to be part of a UID of the material (UIDs are kept, they are no identifiers)
        # cannot be told from a leak: such examples are discarded
        uids = " ".join(first.instances[["sop_uid", "series_uid", "study_uid"]].astype(str).to_numpy().ravel())
        assume(not any(p["hospital_id"] in uids for p in people))
        # the planted values are really in the repository's tables (the check below is not vacuous)
        assert set(first.instances["patient_id"]) >= {p["hospital_id"] for p in people}
        for scan in (first, again):
            out = Path(tmp) / "out"
            written = scan.write_tables(out)
            for f in written:
                _assert_none_planted(planted, f.read_bytes(), f"kicc scan --out {f.name}")
            shutil.rmtree(out)
            text = "\n".join([scan.summary(), repr(scan), *scan.warnings, *(str(w.message) for w in caught)])
            _assert_none_planted(planted, text, "summary, repr and warnings")
        printed = capsys.readouterr()
        _assert_none_planted(planted, printed.out + printed.err + caplog.text, "printed output and log")
        pd.testing.assert_frame_equal(first.instances, again.instances)
        pd.testing.assert_frame_equal(first.skipped, again.skipped)
        assert sorted(os.fsencode(p) for p in root.rglob("*")) == before  # nothing written into the repository
        if "bomb" in cases:
            assert first.skipped["reason"].str.contains("decompression bomb").any()
        derived = sorted(p for p in index.rglob("*") if p.is_file())
        for check in DERIVED_FILE_CHECKS:
            check(derived, root)
        for f in derived:
            _assert_none_planted(planted, f.read_bytes(), f"derived file {f.name}")
            _assert_none_planted(planted, os.fsencode(f.name), "derived file name")


# ----------------------------------------------------------------------------------------------------------------------
# Existing protections, kept under test: no unpickling or eval of repository content, hashed output names.

_FORBIDDEN_CALLS = {
    ("pickle", "load"),
    ("pickle", "loads"),
    ("pd", "read_pickle"),
    ("pandas", "read_pickle"),
    ("marshal", "loads"),
    ("yaml", "load"),
    ("shelve", "open"),
    (None, "eval"),
    (None, "exec"),
}


def test_package_never_unpickles_or_evals():
    found = []
    for path in sorted((PROJECT_ROOT / "kicc_analysis").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            name = (
                (f.value.id if isinstance(f.value, ast.Name) else None, f.attr)
                if isinstance(f, ast.Attribute)
                else (None, f.id)
                if isinstance(f, ast.Name)
                else None
            )
            if name in _FORBIDDEN_CALLS:
                found.append(f"{path.name}:{node.lineno} {name}")
            if name in {("np", "load"), ("numpy", "load")} and any(
                k.arg == "allow_pickle" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                for k in node.keywords
            ):
                found.append(f"{path.name}:{node.lineno} np.load(allow_pickle)")
    assert found == []


def test_cache_file_names_are_hashes_not_repository_text(tmp_path):
    from kicc_analysis.quantification import batch

    hostile = "../../../etc/passwd\x00환자"
    job = {"subjid": "KICC-S01-0001", "series_uid": hostile, "timepoint": "baseline", "img_day": 0, "source": "x"}
    path = batch._cache_path(tmp_path, batch.job_cache_key(job, bins="default"))
    assert path.parent == tmp_path and path.name.startswith("series_") and path.name.endswith(".parquet")
    assert all(c in "0123456789abcdef" for c in path.stem.removeprefix("series_"))
