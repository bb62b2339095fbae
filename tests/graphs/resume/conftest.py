# ruff: noqa: RUF001
# Resumes write en dashes and full-width punctuation.
"""Fictional resumes and job ads for the resume graph's tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.evals._resume_fixtures import RESUMES
from weft.components.embeddings import HashingEmbeddings
from weft.graphs.resume.jobs import JobIndex

MARIA = """# Maria Schneider
Berlin, Germany | maria.schneider@example.de | +49 170 1234567 | github.com/maria-s

## Summary
Data engineer who builds freight data pipelines.

## Experience
Senior Data Engineer | Nordlicht Logistics GmbH | 03/2019 – present
- Built ETL pipelines in Python and Apache Spark on AWS
- Ran Airflow and dbt

Data Engineer at Kranich Bank
Jan 2016 - Feb 2019
- Wrote SQL for the warehouse and dashboards in Tableau

## Education
MSc Computer Science, TU Berlin, 2013 - 2015

## Skills
Python 3, SQL, Spark, Airflow; k8s, Postgress

## Languages
German (native), English (C1)
"""

LI = RESUMES["li-ming.txt"]

JONAS = """Jonas Weber
Standort: Hamburg, Deutschland
E-Mail: jonas.weber@example.org
Telefon: +49 40 12345678

Berufserfahrung
Produktdesigner, Hafenblick Studio
Januar 2020 bis heute
- Figma, Design Systems und Usability Testing für eine Reise-App

UX Designer bei Möwe Medien
Mai 2014 – Juni 2017
- Wireframes und Prototypen

Ausbildung
B.A. Kommunikationsdesign, HAW Hamburg, 2010 - 2014

Kenntnisse
Figma, Sketch, Adobe XD, User Research
"""

ADS = {
    "data-engineer.md": """# Senior Data Engineer
Location: Berlin, Germany

## Requirements
- 5+ years building data pipelines
- Python, SQL, Apache Spark, Airflow

## Nice to have
- Kubernetes, Terraform
""",
    "designer.txt": """Product Designer
Location: Remote
Requirements:
Figma, user research, design systems, 3 years of product work.
""",
    "accountant.md": """# Group Accountant
Location: Munich, Germany

## Requirements
- IFRS, HGB, SAP, 4 years
""",
}


@pytest.fixture
def jobs_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "jobs"
    folder.mkdir()
    for name, text in ADS.items():
        (folder / name).write_text(text, encoding="utf-8")
    nurse = {
        "title": "ICU Nurse",
        "location": "Shanghai",
        "required_skills": ["Critical Care", "Patient Care", "BLS"],
        "nice_to_have": ["ACLS"],
        "min_years": 3,
        "description": "Intensive care nursing in a city hospital.",
    }
    (folder / "icu-nurse.json").write_text(json.dumps(nurse), encoding="utf-8")
    return folder


@pytest.fixture
def job_index(jobs_dir: Path, tmp_path: Path) -> JobIndex:
    index = JobIndex(jobs_dir, data_dir=tmp_path / "data", embedding=HashingEmbeddings())
    index.refresh()
    return index
