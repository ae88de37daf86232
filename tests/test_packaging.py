"""Packaging: conda and pip dependency lists agree, versions are pinned, the CLI answers --help."""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml

from kicc_analysis.cli import build_parser, main


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\s\[]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


@pytest.fixture(scope="module")
def pyproject(project_root) -> dict:
    return tomllib.loads((project_root / "pyproject.toml").read_text())


def test_environment_yml_and_pyproject_name_the_same_dependencies(project_root, pyproject):
    environment = yaml.safe_load((project_root / "environment.yml").read_text())
    conda, pip = set(), set()
    for entry in environment["dependencies"]:
        if isinstance(entry, dict):
            pip |= {_name(r) for r in entry["pip"] if not r.startswith("-e")}
        else:
            conda.add(_name(entry))
    conda -= {"python", "pip"}
    declared = {_name(r) for r in pyproject["project"]["dependencies"]}
    declared |= {_name(r) for r in pyproject["project"]["optional-dependencies"]["dev"]}
    assert conda | pip == declared
    assert not conda & pip, "a dependency is listed twice in environment.yml"
    python = [e for e in environment["dependencies"] if isinstance(e, str) and e.startswith("python")]
    assert python == ["python=3.11"]


def test_every_declared_dependency_is_pinned(project_root, pyproject):
    pins = {}
    for line in (project_root / "requirements" / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[_name(name)] = version.strip()
    declared = [*pyproject["project"]["dependencies"], *pyproject["project"]["optional-dependencies"]["dev"]]
    unpinned = [_name(r) for r in declared if _name(r) not in pins]
    assert unpinned == []


def test_no_gpl_jpeg_codec_is_declared(project_root):
    text = (project_root / "pyproject.toml").read_text() + (
        project_root / "requirements" / "constraints.txt"
    ).read_text()
    assert "pylibjpeg-libjpeg" not in text


@pytest.mark.parametrize("command", ["demo", "scan", "validate", "cohort", "quantify", "study", "dictionary", "export"])
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: kicc " + command in capsys.readouterr().out


def test_cli_reports_errors_in_one_line(tmp_path, capsys):
    status = main(["validate", str(tmp_path / "missing.csv")])
    err = capsys.readouterr().err
    assert status == 2
    assert "kicc validate: error: clinical table not found" in err
    assert "Traceback" not in err


def test_cli_validate_exit_status_reflects_errors(tmp_path, capsys):
    good = tmp_path / "good.csv"
    good.write_text(
        "subjid,kicc_site,demog_age,demog_sex,sever_who_adm,outco_outcome,outco_day\nKICC-S01-0001,S01,40,1,4,1,10\n"
    )
    assert main(["validate", str(good)]) == 0
    assert "conforms" in capsys.readouterr().out
    bad = tmp_path / "bad.csv"
    bad.write_text(good.read_text().replace(",40,", ",forty,"))
    out_csv = tmp_path / "report.csv"
    assert main(["validate", str(bad), "--out", str(out_csv)]) == 1
    assert "not_numeric" in capsys.readouterr().out
    assert "not_numeric" in out_csv.read_text()


def test_parser_requires_a_subcommand():
    with pytest.raises(SystemExit):
        build_parser().parse_args([])


def test_cli_quantify_and_cohort_report_missing_inputs(tmp_path, capsys):
    assert main(["quantify", "--repository", str(tmp_path / "absent")]) == 2
    assert "repository folder not found" in capsys.readouterr().err
    assert main(["cohort", str(tmp_path)]) == 2
    assert "no clinical table" in capsys.readouterr().err


def test_cluster_extra_is_in_dev_and_pinned(project_root, pyproject):
    """`pip install kicc-analysis[cluster]` names dask + distributed; the dev extras carry them too (tests)."""
    extras = pyproject["project"]["optional-dependencies"]
    cluster = {_name(r) for r in extras["cluster"]}
    assert cluster == {"dask", "distributed"}
    assert cluster <= {_name(r) for r in extras["dev"]}
    pins = (project_root / "requirements" / "constraints.txt").read_text().lower().splitlines()
    assert all(any(line.startswith(f"{name}==") for line in pins) for name in cluster)


def test_no_merge_conflict_markers_in_the_source_tree():
    # a conflict resolved by hand once left `<<<<<<< HEAD` in a module docstring, which only the doctest run caught
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    suffixes = {".py", ".md", ".toml", ".yml", ".yaml", ".cfg", ".txt", ".sh", ".html", ".css", ".js"}
    skip = {".venv", ".git", "results", "demo_repository", "node_modules", "_output"}
    marker = re.compile(r"^(<{7} |>{7} |={7}$)", re.MULTILINE)
    import os

    bad, checked = [], 0
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [d for d in subfolders if d not in skip and not d.startswith(".") or d == ".ci"]
        for name in files:
            path = Path(folder) / name
            if path.suffix in suffixes or name in {"Makefile", "run"}:
                checked += 1
                if marker.search(path.read_text(encoding="utf-8", errors="replace")):
                    bad.append(str(path.relative_to(root)))
    assert checked > 100 and bad == []
