-- CWT commissioner basis (patients by where they live: the commissioner responsible, CCG before
-- July 2022, sub-ICB location since), one row per published row, in the provider extract's
-- vocabulary so that one counting rule (int_cwt_counted) reads both bases:
--   SUB-CATEGORY '31-day (First)'            → route 'First Treatment'
--                '31-day Sub (<modality>)'   → route 'Subsequent Treatment', that treatment modality
--                '62-day (<route>)'          → route '<route>' (Urgent Suspected Cancer, Screening, ...)
--                '' (28-day FDS, 2WW)         → no route
-- The commissioner rows of one standard are disjoint (no ALL MODALITIES total row); cancer type is
-- not published on this basis.
--
-- Codes: a CCG that merged maps to its successor (ref_org_successors, e.g. the seven NEL CCGs →
-- A3A8R, the five NCL CCGs → 93C), then the code is placed in its ICB by the 2024 sub-ICB lookup,
-- else the July 2022 one, else the ODS CCG file (a CCG's ICB); a code that is itself an ICB
-- (workbooks coded by ICB) is its own ICB. Codes none of these know (UNKNOWN, commissioning hubs)
-- keep no ICB and count in England only.
--
-- Sources as stg_cwt_provider: the ICB sub-location extracts (`cwt_commissioner`) and the monthly
-- commissioner workbooks (`cwt_commissioner_workbook`); `stg_cwt_month_source` names the one
-- counted for each month.
WITH sources AS (
    SELECT source_shape, period, financial_year, standard, sub_icb_code, sub_category,
           total, within_standard, breaches
    FROM cwt_commissioner
    UNION ALL
    SELECT source_shape, period, financial_year, standard, sub_icb_code, sub_category,
           total, within_standard, breaches
    FROM cwt_commissioner_workbook
),
chosen AS (
    SELECT s.*
    FROM sources s
    JOIN stg_cwt_month_source m
      ON m.basis = 'commissioner' AND m.period = s.period AND m.source_shape = s.source_shape
),
coded AS (
    SELECT c.*, coalesce(m.new_code, c.sub_icb_code) AS org_code,
           trim(regexp_replace(coalesce(c.sub_category, ''), '^(28|31|62)-day', '')) AS category
    FROM chosen c
    LEFT JOIN ref_org_successors m ON m.old_code = c.sub_icb_code AND m.kind = 'ccg_merger'
)
SELECT
    c.source_shape,
    c.period AS month,
    c.financial_year,
    c.standard,
    c.sub_icb_code AS org_code_original,
    c.org_code,
    coalesce(s24.sub_icb_name, s22.sub_icb_name, g.name, i.icb_name) AS org_name,
    coalesce(s24.icb_code, s22.icb_code, g.high_level_health_geography, i.icb_code) AS icb_code,
    CASE
        WHEN c.category = '' THEN NULL
        WHEN c.category = '(First)' THEN 'First Treatment'
        WHEN c.category LIKE 'Sub %' THEN 'Subsequent Treatment'
        ELSE trim(BOTH '()' FROM c.category)
    END AS route,
    CASE WHEN c.category LIKE 'Sub %' THEN trim(BOTH '()' FROM substr(c.category, 5)) END AS treatment_modality,
    c.total,
    c.within_standard,
    c.breaches
FROM coded c
LEFT JOIN ref_sub_icb_2024 s24 ON s24.sub_icb_code = c.org_code
LEFT JOIN ref_sub_icb_2022 s22 ON s22.sub_icb_code = c.org_code
LEFT JOIN ref_ods_ccgs g ON g.org_code = c.org_code
LEFT JOIN ref_icb_names i ON i.icb_code = c.org_code
