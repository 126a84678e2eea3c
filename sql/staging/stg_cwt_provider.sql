-- CWT provider basis: every published shape of the provider figures, one row per published row,
-- provider codes mapped to the current trust (the published code kept).
--
-- Sources and precedence: each source is one branch of `sources` with its `source_shape` and a
-- `precedence`; for each month and standard only the rows of the source with the highest
-- precedence are kept, so two shapes of the same month never double count. A monthly workbook
-- (final official statistics) takes precedence over a data extract of the same month:
--     UNION ALL SELECT 'workbook', 2, period, financial_year, standard, org_code, route,
--            treatment_modality, cancer_type, total, within_standard, breaches
--     FROM cwt_provider_workbook
-- Within one staging table a later file already replaces the months it covers (replace_by_period).
WITH sources AS (
    SELECT 'extract' AS source_shape, 1 AS precedence, period, financial_year, standard, org_code, route,
           treatment_modality, cancer_type, total, within_standard, breaches
    FROM cwt_provider
),
chosen AS (
    SELECT s.*, max(precedence) OVER (PARTITION BY period, standard) AS best
    FROM sources s
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
WHERE c.precedence = c.best
