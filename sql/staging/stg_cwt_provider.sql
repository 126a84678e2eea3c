-- CWT provider basis: every published shape of the provider figures, one row per published row,
-- provider codes mapped to the current trust (the published code kept).
--
-- Sources: the CRS data extracts (`cwt_provider`) and the monthly workbooks
-- (`cwt_provider_workbook`), in one vocabulary. A month published in both shapes counts once:
-- `stg_cwt_month_source` names the one source of each basis and month (a FINAL workbook, else a
-- FINAL extract, else a provisional workbook, else a provisional extract). Within one staging
-- table a later file already replaces the months it covers (replace_by_period).
WITH sources AS (
    SELECT source_shape, period, financial_year, standard, org_code, route,
           treatment_modality, cancer_type, total, within_standard, breaches
    FROM cwt_provider
    UNION ALL
    SELECT source_shape, period, financial_year, standard, org_code, route,
           treatment_modality, cancer_type, total, within_standard, breaches
    FROM cwt_provider_workbook
),
chosen AS (
    SELECT s.*
    FROM sources s
    JOIN stg_cwt_month_source m
      ON m.basis = 'provider' AND m.period = s.period AND m.source_shape = s.source_shape
)
SELECT
    c.source_shape,
    c.period AS month,
    c.financial_year,
    c.standard,
    c.org_code AS org_code_original,
    coalesce(s.new_code, c.org_code) AS org_code,
    c.route,
    c.treatment_modality,
    c.cancer_type,
    c.total,
    c.within_standard,
    c.breaches
FROM chosen c
LEFT JOIN ref_org_successors s
    ON s.old_code = c.org_code AND s.kind = 'trust_merger'
