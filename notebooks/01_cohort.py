# ---
# jupyter:
#   jupytext:
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: kicc-analysis, language: python, name: python3}
# ---

# %% [markdown]
# # 01 — Cohort
#
# Builds the KICC-19 cohort table from the repository (clinical table + DICOM inventory) and reports:
# the cohort flow (counts at each inclusion step), Table 1 by national severity category, missingness
# and the data-quality report of the clinical export, linkage problems, a de-identification audit of a
# sample of the DICOM files, and the imaging inventory.

# %% tags=["parameters"]
repository = "../demo_repository"  # path of the repository (demo or real), relative to notebooks/ in JupyterLab
output_dir = "../results"

# %%
NOTEBOOK_VERSION = "1.1.0"

from kicc_analysis.cohort import build_cohort
from kicc_analysis.dictionary import summarise_report
from kicc_analysis.figures import cohort_figures
from kicc_analysis.prognosis import table_one
from kicc_analysis.provenance import OutputWriter

build = build_cohort(repository)
cohort = build.table
out = OutputWriter(
    output_dir, notebook="01_cohort", version=NOTEBOOK_VERSION,
    cohort_version=build.cohort_version, parameters={"repository": str(repository)},
)
print(build.describe())

# %% [markdown]
# ## Cohort flow

# %%
out.table(build.flow, "cohort_flow", title="Cohort flow", description="Patients at each inclusion step and why others were excluded")

# %% [markdown]
# ## Table 1 by national severity category
#
# Continuous variables as mean (SD), laboratory values and onset-to-admission as median [IQR]; categorical as n (%).
# p-values from ANOVA / Kruskal–Wallis / χ² (Fisher where expected counts are small); SMD as in R `tableone`.

# %%
from kicc_analysis.dictionary import decode, display_labels

continuous = ["demog_age", "demog_bmi", "pres_onset_days", "vital_spo2room", "vital_rr", "vital_highesttem_c",
              "labs_wbccount", "labs_lymphocyte_109l", "labs_platelets_109l", "labs_crp_mgl", "labs_ldh",
              "labs_ddimer_mgl", "labs_ferritin", "labs_procalcito_ngml", "labs_creatinine_umoll", "labs_il6"]
categorical = ["demog_sex", "comor_smoking", "comor_hypertensi", "comor_diabetes", "comor_chrpulmona",
               "comor_chrcardiac", "comor_chrkidney", "comor_malignantn", "comor_immunosupp"]
nonnormal = [v for v in continuous if v.startswith("labs_") or v == "pres_onset_days"]
readable = decode(cohort, categorical + ["sever_national"])
table1 = table_one(readable, groupby="sever_national", variables=continuous + categorical,
                   nonnormal=nonnormal, categorical=categorical, labels=display_labels(continuous + categorical))
out.table(table1.table, "table1_by_severity", title="Table 1 by national severity category", index=True)
out.table(table1.tests, "table1_by_severity_tests", title="Table 1 tests and standardised mean differences", index=True)

# %% [markdown]
# ## Missingness and data quality

# %%
missing = cohort.isna().mean().rename("missing_fraction").to_frame()
missing = missing[missing["missing_fraction"] > 0].sort_values("missing_fraction", ascending=False)
out.table(missing, "missingness", title="Fraction missing per variable", index=True)
quality = summarise_report(build.validation)
out.table(build.validation, "data_quality_report", title="Clinical table validation report (one row per problem)")
out.table(quality, "data_quality_summary", title="Clinical table problems by class")
out.table(build.linkage, "linkage_problems", title="Linkage problems between images and clinical rows")

# %% [markdown]
# ## De-identification audit (a sample of the DICOM files)
#
# `kicc_analysis.deid.audit` checks every element of a file against the DICOM de-identification profile
# (PS3.15 Annex E), free text and file names against the package's identifier detector, dates for consistency
# within a study, and (OCR) radiographs for burned-in text. Auditing every file takes long on a real repository,
# so this section audits one file per series, every file the scanner could not index, every file whose name
# looks identifying, and OCRs at most `ocr_limit` radiographs whose header does not say "no burned-in text".
# Previews are masked: no identifier is printed or written. Run `kicc audit` for the full check.
#
# The demo keeps shifted dates and descriptions (no de-identification options declared), so the Annex E rules
# (`annex_e:*`, `uid_not_replaced`) fire on every file; the rules to look at are the others.
# `generate_demo(..., deid_problems=True)` plants five problems this section reports.

# %%
import tempfile

from kicc_analysis.deid.audit import audit_repository
from kicc_analysis.repository.audit_sample import audit_summary, write_audit_sample

ocr_limit = 5
with tempfile.TemporaryDirectory() as sample_dir:
    sample = write_audit_sample(build.scan, sample_dir, ocr_limit=ocr_limit)
    header_audit = audit_repository(sample.headers, ocr=False, show=False)
    pixel_audit = audit_repository(sample.ocr, ocr=True, show=False) if sample.n_ocr else None
print(f"audited {sample.n_headers} files (one per series of {sample.n_series}, plus unindexed and named files); "
      f"OCR on {sample.n_ocr} radiographs")
print(header_audit.summary())
burned_in = None
if pixel_audit is not None:
    burned_in = pixel_audit.findings[pixel_audit.findings["rule"].str.startswith("burned_in")]
deid_summary = audit_summary(header_audit.findings, burned_in)
out.table(deid_summary, "deid_audit_summary", title="De-identification audit of a sample of the DICOM files",
          description="One row per rule: findings, files, one example (file and folder names and values masked)")

# %% [markdown]
# ## Imaging inventory

# %%
fig = cohort_figures.imaging_inventory(cohort, build.inventory)
out.figure(fig, "imaging_inventory", title="Imaging inventory", description="Studies per patient and timing of follow-up CT")
fig = cohort_figures.missingness_heatmap(cohort, [v for v in continuous + categorical if v in cohort])
out.figure(fig, "missingness_heatmap", title="Missingness by variable and site")
