"""DICOMweb source throughput against a local Orthanc: QIDO-RS scan and WADO-RS fetch vs plain dicomweb-client.

Usage::

    .venv/bin/python benchmarks/dicomweb_benchmark.py                  # 20-patient demo, 3 repeats
    .venv/bin/python benchmarks/dicomweb_benchmark.py --patients 5 --repeats 1   # quick check

A demo repository (``kicc_analysis.demo``) is written under ``--work-dir`` (default ``/tmp/kicc_dicomweb_benchmark``)
and uploaded to an Orthanc started on 127.0.0.1 (the test fixture's :class:`tests.conftest.OrthancServer`: Debian
packages ``orthanc`` + ``orthanc-dicomweb``). Runs, alternated in each repeat:

* ``files first``      ``scan_repository(dicom/, index_dir=<empty>, workers=2)`` of the same files
* ``files rescan``     the same call again (index reused)
* ``dicomweb first``   ``scan_dicomweb(url, index_dir=<empty>)``: study list + one paged QIDO-RS query per study
* ``dicomweb rescan``  the same call again (study list only)
* ``client QIDO``      peer: plain dicomweb-client, ``search_for_instances(study, fields=..., get_remaining=True)``
  per study (the same requests, no tables)
* ``dicomweb fetch``   ``os.fspath(series_source(scan, uid))`` for every selected CT series into an empty cache
* ``client WADO``      peer: ``client.retrieve_series(study, series)`` + ``Dataset.save_as`` per instance

Prints a Markdown table (medians) with the machine and date.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work-dir", default="/tmp/kicc_dicomweb_benchmark")
    args = parser.parse_args(argv)
    os.environ.setdefault("KICC_NO_PROGRESS", "1")

    from dicomweb_client.api import DICOMwebClient

    from kicc_analysis.demo import generate_demo
    from kicc_analysis.repository import scan_repository
    from kicc_analysis.repository.dicomweb import HEADER_ENV, QIDO_FIELDS, scan_dicomweb, series_source
    from tests.conftest import ORTHANC_PLUGIN_CANDIDATES, OrthancServer

    work = Path(args.work_dir) / f"demo-{args.patients}"
    if not (work / "manifest.json").exists():
        generate_demo(work, n_patients=args.patients, seed=19, show_progress=False)
    plugin = next(p for p in ORTHANC_PLUGIN_CANDIDATES if p.exists())
    server_dir = Path(tempfile.mkdtemp(prefix="orthanc-", dir=args.work_dir))
    server = OrthancServer(server_dir, plugin)
    server.start()
    try:
        files = sorted(p for p in (work / "dicom").rglob("*") if p.is_file())
        t_upload, _ = _timed(lambda: server.upload(files))
        os.environ[HEADER_ENV] = server.auth_header
        session = server._session()
        client = DICOMwebClient(url=server.dicomweb_url.removeprefix("dicomweb+"), session=session)
        times: dict[str, list[float]] = {}
        scratch = Path(args.work_dir) / "scratch"
        n_bytes = n_series = 0
        for _ in range(args.repeats):
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir(parents=True)
            t, fs = _timed(lambda: scan_repository(work / "dicom", index_dir=scratch / "fs", workers=2))
            times.setdefault("files first", []).append(t)
            t, _ = _timed(lambda: scan_repository(work / "dicom", index_dir=scratch / "fs", workers=2))
            times.setdefault("files rescan", []).append(t)
            t, web = _timed(lambda: scan_dicomweb(server.dicomweb_url, index_dir=scratch / "web"))
            times.setdefault("dicomweb first", []).append(t)
            t, _ = _timed(lambda: scan_dicomweb(server.dicomweb_url, index_dir=scratch / "web"))
            times.setdefault("dicomweb rescan", []).append(t)

            def peer_qido():
                studies = client.search_for_studies(get_remaining=True)
                return sum(
                    len(
                        client.search_for_instances(
                            s["0020000D"]["Value"][0], fields=list(QIDO_FIELDS), get_remaining=True
                        )
                    )
                    for s in studies
                )

            t, n_peer = _timed(peer_qido)
            assert n_peer == len(web.instances), (n_peer, len(web.instances))
            times.setdefault("client QIDO", []).append(t)
            uids = list(web.selection["series_uid"].dropna())
            sources = [series_source(web, uid, cache_dir=scratch / "cache", max_bytes=1 << 40) for uid in uids]
            t, folders = _timed(lambda sources=sources: [os.fspath(s) for s in sources])
            times.setdefault("dicomweb fetch", []).append(t)
            n_bytes = sum(f.stat().st_size for d in folders for f in Path(d).iterdir())
            n_series = len(uids)

            def peer_wado(sources=sources):
                out = scratch / "peer"
                out.mkdir()
                for s in sources:
                    for ds in client.retrieve_series(s.study_uid, s.series_uid):
                        ds.save_as(out / f"{ds.SOPInstanceUID}.dcm", enforce_file_format=True)

            t, _ = _timed(peer_wado)
            times.setdefault("client WADO", []).append(t)
        n_inst = len(web.instances)
    finally:
        server.stop()
        shutil.rmtree(server_dir, ignore_errors=True)

    load = os.getloadavg()[0]
    print(
        f"\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cores, load {load:.1f}; "
        f"{args.patients}-patient demo: {n_inst} instances, {len(web.studies)} studies, {n_series} selected CT series "
        f"({n_bytes / 1e6:.1f} MB); upload (POST /instances, one file at a time) {len(files) / t_upload:.0f} files/s; "
        f"medians of {args.repeats}\n"
    )
    print("| run | median s | rate |")
    print("|---|---|---|")
    for name, values in times.items():
        med = statistics.median(values)
        if "fetch" in name or "WADO" in name:
            rate = f"{n_bytes / 1e6 / med:.1f} MB/s, {n_series / med * 60:.0f} series/min"
        else:
            rate = f"{n_inst / med:.0f} instances/s"
        print(f"| {name} | {med:.3f} | {rate} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
