# ruff: noqa: RUF001
# Resumes write en dashes and full-width punctuation.
"""Writes the resume-matching suite's resumes: ``python -m tests.evals._resume_fixtures``.

The people, companies and schools are fictional. PDF and DOCX resumes are made from the texts
below with the test helpers, so the committed files can be made again.
"""

from __future__ import annotations

from pathlib import Path

from tests.graphs.resume._files import write_resume

FOLDER = Path(__file__).resolve().parents[2] / "weft/evals/suites/data/resume-matching/resumes"

RESUMES: dict[str, str] = {
    "maria-schneider.pdf": """Maria Schneider
Berlin, Germany | maria.schneider@example.de | +49 170 1234567

Summary
Data engineer who builds freight data pipelines.

Experience
Senior Data Engineer | Nordlicht Logistics GmbH | 03/2019 - present
- Built ETL pipelines in Python and Apache Spark on AWS
- Scheduled jobs with Airflow and modelled tables with dbt

Data Engineer at Kranich Bank
Jan 2016 - Feb 2019
- Wrote SQL for the warehouse and dashboards in Tableau

Education
MSc Computer Science, TU Berlin, 2013 - 2015

Skills
Python 3, SQL, Spark, Airflow, k8s, Postgres
""",
    "jonas-weber.docx": """# Jonas Weber
Standort: Hamburg, Deutschland
E-Mail: jonas.weber@example.org
Telefon: +49 40 12345678

## Berufserfahrung
Produktdesigner, Hafenblick Studio
Januar 2020 bis heute
- Figma, Design Systems und Usability Testing für eine Reise-App

UX Designer bei Möwe Medien
Mai 2014 – Juni 2017
- Wireframes und Prototypen für Nachrichtenseiten

## Ausbildung
B.A. Kommunikationsdesign, HAW Hamburg, 2010 - 2014

## Kenntnisse
Figma, Sketch, Adobe XD, User Research, Barrierefreiheit (WCAG)
""",
    "arjun-mehta.pdf": """Arjun Mehta
London, United Kingdom
arjun.mehta@example.co.uk | +44 20 7946 0958 | github.com/arjun-m

Profile
Machine learning engineer focused on language models for customer support.

Work Experience
Machine Learning Engineer, Tidewater Analytics, Sept. 2020 - current
- Fine-tuned transformer models in PyTorch for NLP ticket routing
- Served models with Docker and MLflow

Data Scientist, Larkspur Retail, 06/2017 - 08/2020
- Demand forecasting with scikit-learn and pandas

Education
BSc Mathematics, University of Leeds, 2014 - 2017

Technical Skills
Python, PyTorch, sklearn, NLP, Docker, SQL, Hugging Face
""",
    "katrin-vogel.docx": """# Katrin Vogel
München, Germany
katrin.vogel@example.de · +49 89 2345678

## Berufserfahrung
Bilanzbuchhalterin | Alpenkamm AG | 04/2018 – heute
- Konzernabschluss nach HGB und IFRS in SAP FI
- Monatsabschluss und Reporting an den Vorstand

Buchhalterin | Seeblick Versicherung | 09/2013 – 03/2018
- Kreditorenbuchhaltung mit DATEV

## Ausbildung
Bachelor BWL, Hochschule Augsburg, 2009 - 2013

## Kenntnisse
HGB; IFRS; SAP FI/CO; DATEV; Excel; Financial Reporting
""",
    "tom-baker.txt": """Tom Baker
tom.baker@example.org
(555) 123-4567
Bristol, United Kingdom

Experience
Head Baker - Rye & Co Bakery - 2012 - 2021
- Ran the sourdough programme and trained apprentices
Pastry Chef, Hotel Marlowe, 2008 - 2012

Skills
Sourdough, lamination, food safety, team scheduling
""",
    "wang-fang.md": """# 王芳 (Wang Fang)
邮箱：wang.fang@example.cn
电话：+86 139 1234 5678
地址：Amsterdam, Netherlands

## 工作经历
2019年3月 - 至今  Backend Engineer, Fietsnet B.V.
- Built Go services with gRPC on Kubernetes; PostgreSQL and Kafka for rides
- Set up Prometheus dashboards

2016年7月 - 2019年2月  软件工程师, 杭州云桥科技
- Java microservices, MySQL, Redis

## 教育背景
2012 - 2016  浙江大学 计算机科学 学士

## 技能
Golang、Kubernetes、PostgreSQL、gRPC、Kafka、Java、Redis
""",
    "lukas-brandt.pdf": """Lukas Brandt
Stuttgart, Germany
lukas.brandt@example.de, +49 711 9876543

Berufserfahrung
Konstrukteur, Neckartal Maschinenbau GmbH
03.2017 - heute
- Konstruktion von Vorrichtungen in SolidWorks, FEM-Berechnungen mit ANSYS
- Technische Zeichnungen nach GD&T

Entwicklungsingenieur, Filderwerk AG
10.2012 - 02.2017
- Lean Manufacturing Projekte in der Montage

Ausbildung
Dipl.-Ing. Maschinenbau, Universität Stuttgart, 2006 - 2012

Kenntnisse
SolidWorks, FEA, GD&T, Technical Drawing, Lean Manufacturing, CATIA
""",
    "emily-clarke.docx": """# Emily Clarke
Frankfurt, Germany
emily.clarke@example.com | +49 69 5551234

## Experience
Financial Analyst - Mainbrücke Privatbank - Aug 2021 - Present
- Built DCF models and company valuations in Excel
- Pulled market data from Bloomberg

Junior Analyst - Rheinau Capital - Jul 2019 - Jul 2021
- Financial statement analysis for credit committees

## Education
MSc Finance, Goethe University Frankfurt, 2017 - 2019

## Skills
Financial modelling, Excel, valuation, financial analysis, Bloomberg, Power BI
""",
    "david-okafor.txt": """David Okafor
Hamburg, Germany
david.okafor@example.net
+49 40 7654321

SUMMARY
IT project manager for logistics software.

EXPERIENCE
IT Project Manager, Elbhafen Logistik GmbH, 2017 - present
- Ran Scrum teams of 12, sprint planning in Jira
- Stakeholder management across three countries; budget management of 4 M EUR

Project Coordinator, Kaiser Spedition, 2014 - 2016
- Coordinated warehouse system roll-outs

CERTIFICATIONS
PMP, Professional Scrum Master

SKILLS
Project management, Scrum, Jira, stakeholder management, budgeting, Confluence
""",
    "noor-haddad.md": """# Noor Haddad
Zurich, Switzerland · noor.haddad@example.ch · +41 44 555 12 34

## Experience
### Site Reliability Engineer, Glacier Payments
Feb 2020 – present
- Ran Kubernetes clusters on AWS, infrastructure as code with Terraform
- Built monitoring with Prometheus and Grafana; on-call for Linux fleets

### DevOps Engineer, Alpenbyte
Apr 2016 – Jan 2020
- GitLab CI pipelines, Ansible, Python tooling

## Skills
- Kubernetes, Terraform, AWS, Linux, Prometheus, Python, Ansible, CI/CD
""",
    "li-ming.txt": """李明
邮箱：li.ming@example.cn
电话：13812345678
地址：上海

工作经历
2018.07 - 至今  上海青松医院  重症监护护士
- 重症监护病房护理，ICU patient care, BLS, ACLS

2015年7月 - 2018年6月  杭州仁和医院  护士
- 急诊分诊 triage, Patient Care

教育背景
2011 - 2015  复旦大学护理学院  护理学学士

技能
Critical Care、Patient Care、BLS、ACLS、Electronic Health Records
""",
    "sofia-rossi.md": """# Sofia Rossi
Milan, Italy | sofia.rossi@example.it | +39 02 1234 5678 | https://sofiarossi.example.it

## Summary
Frontend developer who cares about fast, accessible shops.

## Experience
**Frontend Developer**, Verde Commerce — 2021-02 – present
- React and TypeScript storefront, Next.js server rendering
- WCAG audits and Jest unit tests

**Web Developer**, Studio Navigli — 2018-09 – 2021-01
- HTML, CSS and jQuery sites for restaurants

## Skills
ReactJS, TS, CSS3, HTML5, Next.js, Jest, a11y
""",
    # -- held out: written after the rules above were tuned, and not tuned on --------------
    "hannah-berg.pdf": """Hannah Berg
Vienna, Austria
hannah.berg@example.at | +43 1 2345678

Experience
Physiotherapist, Donaupark Rehabilitation Centre, 05/2019 - present
- Physical therapy and rehabilitation after knee and hip surgery
- Patient care plans with the ward team

Physiotherapy Assistant, Kahlenberg Clinic, 09/2016 - 12/2018

Education
BSc Physiotherapy, FH Campus Wien, 2013 - 2016

Skills
Physiotherapy, rehabilitation, patient care, manual therapy
""",
    "chen-jie.docx": """# 陈杰 Chen Jie
邮箱：chen.jie@example.cn
电话：+86 138 0013 8000
地址：Remote

## 工作经历
2020年5月 - 至今  前端开发工程师, 北京绿洲网络
- React 与 TypeScript 电商前端, CSS 模块化

2017年7月 - 2020年4月  Web Developer, 成都星河科技
- Vue.js and JavaScript dashboards

## 技能
React、TypeScript、CSS、Vue.js、JavaScript、Webpack
""",
    "pablo-ortega.md": """# Pablo Ortega
Valencia, Spain — pablo.ortega@example.es — +34 912 345 678

## Experiencia
Jefe de cocina, Casa Albufera, 2015 - actualidad
- Paella, arroces y menú de temporada

Cocinero, Hotel Mar Azul, 2010 - 2014

## Habilidades
Cocina mediterránea, gestión de pedidos, seguridad alimentaria
""",
    "olga-petrova.txt": """Olga Petrova
London, United Kingdom
olga.petrova@example.com, +44 161 496 0000

Experience
Computer Vision Engineer - Ravenscourt Robotics - October 2019 - present
- Trained detection models in PyTorch, deployed with Docker and Kubernetes
- Built MLOps pipelines for retraining

Research Assistant - University of Manchester - 2017 - 2019
- Image processing in Python and OpenCV

Skills
Python, PyTorch, computer vision, machine learning, Docker, MLOps
""",
}


def write_all(folder: Path = FOLDER) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in RESUMES.items():
        write_resume(folder / name, text)


if __name__ == "__main__":
    write_all()
