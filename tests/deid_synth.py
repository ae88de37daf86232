"""Seeded generator of a leaky repository for the de-identification tests (test suite only, not the demo).

It plants unique identifier tokens everywhere a real multi-site upload hides them: every plain row of PS3.15
Table E.1-1 that is not a keep row and whose VR can carry one (text, names, dates, times, UIDs, bytes, and
sequences, whose item holds a planted person name), a repeating-group row (Overlay Comments), a private block
(LO and UN values), a person name three sequence levels deep, descriptions holding the patient's name, UIDs
under a site root with an embedded date, the patient ID and name in folder names, a phone number as a file name,
a DICOMDIR, and a clinical CSV with Hangul names, resident registration numbers, phone numbers, dates in three
formats and free text naming the patient.

:func:`make_repository` returns a :class:`Planted` with every token and where it went, so the tests can require
the audit to find each one and the de-identified output (bytes and paths) to hold none.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from kicc_analysis.deid import annex_e

SITE_ROOT = "1.2.410.200099.7"
_SKIP = {0x00100010, 0x00100020, 0x00080018, 0x0020000D, 0x0020000E, 0x00200052}
_TEXT = {"AE", "CS", "LO", "LT", "SH", "ST", "UC", "UT", "UR"}
_HANGUL = "가나다라마바사아자차카타파하거너더러머버서어저처커터퍼허고노도로모보소오조초코토포호"


@dataclass
class Planted:
    root: Path
    table: Path
    files: list[Path] = field(default_factory=list)
    #: (relative file path, element path) of every planted header value the audit must flag
    header: set[tuple[str, str]] = field(default_factory=set)
    #: every planted token (text) that must not survive de-identification
    tokens: set[str] = field(default_factory=set)
    #: planted dates (shifted, not removed, where the options keep dates: checked by interval, not by bytes)
    dates: set[str] = field(default_factory=set)
    #: original UIDs
    uids: set[str] = field(default_factory=set)
    local_ids: list[str] = field(default_factory=list)
    #: file and folder names that hold identifiers
    leaky_paths: set[str] = field(default_factory=set)
    #: clinical identifier columns, and (row, column) cells of free text with identifiers
    table_columns: set[str] = field(default_factory=set)
    table_cells: set[tuple[int, str]] = field(default_factory=set)


_WORD = re.compile(rb"(?=(Q[BCDFGHJKLMNPRSTVWXZ]{7}))")
_WORD_ONLY = re.compile(r"Q[BCDFGHJKLMNPRSTVWXZ]{7}")


def left_in(tokens: set[str], blob: bytes) -> list[str]:
    """The planted tokens that occur in ``blob`` (UTF-8 bytes): the random words through one regex pass."""
    words = {m.decode() for m in _WORD.findall(blob)}
    hits = [t for t in tokens if t in words]
    return hits + [t for t in tokens if not _WORD_ONLY.fullmatch(t) and t.encode("utf-8") in blob]


def _tag(t: int) -> str:
    return f"({t >> 16:04X},{t & 0xFFFF:04X})"


class _Tokens:
    def __init__(self, rng: random.Random) -> None:
        self.rng, self.n, self.used = rng, 0, set()

    def word(self, n: int = 8) -> str:
        while True:
            w = "Q" + "".join(self.rng.choice("BCDFGHJKLMNPRSTVWXZ") for _ in range(n - 1))
            if w not in self.used:
                self.used.add(w)
                return w

    def hangul(self) -> str:
        while True:
            w = "김" + "".join(self.rng.choice(_HANGUL) for _ in range(2))
            if w not in self.used:
                self.used.add(w)
                return w

    def date(self) -> str:
        while True:
            d = f"19{self.rng.randint(30, 69)}{self.rng.randint(1, 12):02d}{self.rng.randint(1, 28):02d}"
            if d not in self.used:
                self.used.add(d)
                return d

    def uid(self) -> str:
        self.n += 1
        return f"{SITE_ROOT}.20200315{self.rng.randint(100000, 999999)}.{self.n}"


def _plant_profile(ds: Dataset, tok: _Tokens, p: Planted, rel: str, local_id: str) -> None:
    """A value in every plain non-keep Table E.1-1 row whose VR can carry an identifier.

    Rows the default options retain or clean (descriptions, patient characteristics) get the patient's own
    ID: the options keep such text unless it identifies someone, so only a recognisable value is fair.
    """
    retained = {t for option in annex_e.OPTIONS for t in annex_e.OPTION_ACTIONS.get(option, {})}
    for t, code in sorted(annex_e.basic_profile().items()):
        if t in _SKIP or t >> 16 in (0x0000, 0x0002, 0xFFFA, 0xFFFC) or code == "K":  # FFFx: after Pixel Data
            continue
        try:
            vr = dictionary_VR(t)
        except KeyError:
            continue
        if " or " in vr:
            continue
        if vr in _TEXT and t in retained:
            value: object = local_id
        elif vr in _TEXT:
            value = tok.word(8)
            p.tokens.add(value)
        elif vr == "PN":
            a, b = tok.word(8), tok.word(8)
            value = f"{a}^{b}"
            p.tokens |= {a, b}
        elif vr == "DA":
            value = tok.date()
            p.dates.add(value)
        elif vr == "DT":
            value = tok.date() + "101010"
            p.dates.add(value)
        elif vr == "TM":
            value = "101010"
        elif vr == "UI":
            value = tok.uid()
            p.uids.add(value)
        elif vr in ("OB", "UN"):
            w = tok.word(8)
            value = w.encode()
            p.tokens.add(w)
        elif vr == "SQ":
            item = Dataset()
            a = tok.word(8)
            item.add_new(0x0040A123, "PN", f"{a}^X")  # Person Name
            p.tokens.add(a)
            ds.add_new(t, vr, Sequence([item]))
            p.header.add((rel, f"{_tag(t)}[0]>(0040,A123)"))
            continue
        else:
            continue
        ds.add_new(t, vr, value)
        p.header.add((rel, _tag(t)))


def make_repository(folder: Path, *, seed: int = 18, n_patients: int = 3) -> Planted:
    """Write the leaky repository under ``folder/repo`` and its clinical CSV; return what was planted."""
    rng = random.Random(seed)
    tok = _Tokens(rng)
    root = folder / "repo"
    p = Planted(root=root, table=root / "clinical" / "clinical.csv")
    table_rows = []
    for k in range(n_patients):
        local_id = f"{rng.randint(10**7, 10**8 - 1)}"
        p.local_ids.append(local_id)
        hangul = tok.hangul()
        family, given = tok.word(8), tok.word(8)
        p.tokens |= {local_id, hangul, family, given}
        phone = f"010-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}"
        p.tokens.add(phone)
        folder_name = f"{local_id}_{family}"
        refs: list[str] = []
        for study in range(2):
            study_uid = tok.uid()
            p.uids.add(study_uid)
            study_date = f"2020{3 + study:02d}{10 + k:02d}"
            for series in range(2):
                series_uid, frame_uid = tok.uid(), tok.uid()
                p.uids |= {series_uid, frame_uid}
                for instance in range(2):
                    sop = tok.uid()
                    p.uids.add(sop)
                    name = f"{phone}.dcm" if (study, series, instance) == (0, 0, 0) else f"IM{series}{instance}.dcm"
                    rel = f"dicom/{folder_name}/ST{study}/SE{series}/{name}"
                    if name.startswith("010"):
                        p.leaky_paths.add(name)
                    p.leaky_paths.add(folder_name)
                    ds = Dataset()
                    ds.SpecificCharacterSet = "ISO_IR 192"
                    ds.SOPClassUID = CTImageStorage
                    _plant_profile(ds, tok, p, rel, local_id)
                    ds.SOPInstanceUID = sop
                    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
                    ds.PatientID = local_id
                    ds.PatientName = f"{family}^{given}" if k % 2 == 0 else f"{hangul[0]}^{hangul[1:]}"
                    ds.StudyDate, ds.SeriesDate = study_date, study_date
                    ds.PatientAge, ds.PatientSex = "095Y" if k == 0 else "054Y", "F"
                    ds.StudyDescription = f"CHEST CT {family}" if k % 2 == 0 else f"흉부 CT {hangul}"
                    ds.SeriesDescription = f"AXIAL 성명: {hangul}"
                    ds.Modality, ds.InstanceNumber = "CT", instance + 1
                    for e in ("StudyDescription", "SeriesDescription", "PatientName", "PatientID", "StudyDate"):
                        p.header.add((rel, _tag_of(e)))
                    # private block with identifiers
                    block = ds.private_block(0x0009, "ACME HOSPITAL 1.0", create=True)
                    w1, w2 = tok.word(8), tok.word(8)
                    block.add_new(0x01, "LO", f"{w1} {local_id}")
                    block.add_new(0x02, "UN", f"{w2}".encode())
                    p.tokens |= {w1, w2}
                    p.header |= {(rel, "(0009,1001)"), (rel, "(0009,1002)")}
                    # a person name three sequence levels deep
                    deep3 = Dataset()
                    a = tok.word(8)
                    deep3.add_new(0x0040A123, "PN", f"{a}^DEEP")
                    p.tokens.add(a)
                    deep2 = Dataset()
                    deep2.add_new(0x0040A730, "SQ", Sequence([deep3]))
                    deep1 = Dataset()
                    deep1.add_new(0x0040A730, "SQ", Sequence([deep2]))
                    deep1.ReferencedSOPClassUID = CTImageStorage
                    deep1.ReferencedSOPInstanceUID = refs[-1] if refs else sop
                    ds.ReferencedStudySequence = Sequence([deep1])
                    p.header.discard((rel, "(0008,1110)[0]>(0040,A123)"))
                    p.header.add((rel, "(0008,1110)[0]>(0040,A730)[0]>(0040,A730)[0]>(0040,A123)"))
                    # an image reference to the previous instance
                    if refs:
                        ref = Dataset()
                        ref.ReferencedSOPClassUID = CTImageStorage
                        ref.ReferencedSOPInstanceUID = refs[-1]
                        ds.ReferencedImageSequence = Sequence([ref])
                        p.header.discard((rel, "(0008,1140)[0]>(0040,A123)"))
                    refs.append(sop)
                    overlay = tok.word(8)
                    ds.add_new(0x60004000, "LT", overlay)  # Overlay Comments, repeating group 60xx
                    p.tokens.add(overlay)
                    p.header.add((rel, "(6000,4000)"))
                    ds.Rows = ds.Columns = 8
                    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
                    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
                    ds.PixelData = np.full((8, 8), 100 + instance, dtype=np.uint16).tobytes()
                    ds.file_meta = FileMetaDataset()
                    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
                    ds.file_meta.MediaStorageSOPInstanceUID = sop
                    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
                    path = root / rel
                    path.parent.mkdir(parents=True, exist_ok=True)
                    with_warnings_written(ds, path)
                    p.files.append(path)
        rrn = f"{rng.randint(50, 89)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}-{rng.choice('12')}{rng.randint(100000, 999999)}"
        birth = f"19{rng.randint(40, 69)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        p.tokens |= {rrn, rrn.replace("-", "")}
        admission = ["2020-03-15", "2020.03.16", "2020년 3월 17일"][k % 3]
        table_rows.append(
            {
                "patient_id": local_id,
                "patient_name": hangul,
                "rrn": rrn,
                "phone": phone,
                "birth_date": birth,
                "admission_date": admission,
                "notes": f"이름: {hangul}, 연락처 {phone}, 주민번호 {rrn}",
                "crp_mgl": f"{rng.uniform(1, 50):.1f}",
            }
        )
        p.table_cells.add((k, "notes"))
    p.table_columns = {"patient_name", "rrn", "phone", "birth_date"}
    import pandas as pd

    p.table.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(table_rows).to_csv(p.table, index=False, encoding="utf-8")
    _write_dicomdir(root, p, tok)
    return p


def _tag_of(keyword: str) -> str:
    from pydicom.datadict import tag_for_keyword

    return _tag(int(tag_for_keyword(keyword)))


def with_warnings_written(ds: Dataset, path: Path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pydicom.dcmwrite(path, ds, enforce_file_format=True)


def _write_dicomdir(root: Path, p: Planted, tok: _Tokens) -> None:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.FileSetID = "KICC"
    ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.FileSetConsistencyFlag = 0
    record = Dataset()
    record.OffsetOfTheNextDirectoryRecord = 0
    record.RecordInUseFlag = 0xFFFF
    record.OffsetOfReferencedLowerLevelDirectoryEntity = 0
    record.DirectoryRecordType = "PATIENT"
    a = tok.word(8)
    record.PatientName = f"{a}^DICOMDIR"
    record.PatientID = p.local_ids[0]
    p.tokens.add(a)
    ds.DirectoryRecordSequence = Sequence([record])
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    ds.file_meta.MediaStorageSOPInstanceUID = tok.uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    with_warnings_written(ds, root / "DICOMDIR")
    p.header.add(("DICOMDIR", "(0004,1220)[0]>(0010,0010)"))


def known_tag_keyword(t: int) -> str:
    return keyword_for_tag(t)
