-- Which publication counts for each month and basis, so that a month published both as a CRS
-- data extract and as a monthly workbook is counted once (issue 15). One rule, per basis and
-- month: a FINAL workbook, else a FINAL extract, else a provisional (or unstated) workbook, else a
-- provisional (or unstated) extract. Within one table a later file already replaces the months
-- it covers (load.mode = replace_by_period), so each table holds one revision of a month.
-- Unions of the extract and workbook tables keep the rows of the winning source only:
--   JOIN stg_cwt_month_source m
--     ON m.basis = 'provider' AND m.period = u.period AND m.source_shape = u.source_shape
WITH sources AS (
    SELECT DISTINCT 'provider' AS basis, period, source_shape, revision FROM cwt_provider
    UNION ALL
    SELECT DISTINCT 'provider' AS basis, period, source_shape, revision FROM cwt_provider_workbook
    UNION ALL
    SELECT DISTINCT 'commissioner' AS basis, period, source_shape, revision FROM cwt_commissioner
    UNION ALL
    SELECT DISTINCT 'commissioner' AS basis, period, source_shape, revision FROM cwt_commissioner_workbook
),
ranked AS (
    SELECT
        basis,
        period,
        source_shape,
        revision,
        (CASE WHEN revision = 'FINAL' THEN 2 ELSE 0 END)
            + (CASE WHEN source_shape = 'workbook' THEN 1 ELSE 0 END) AS precedence
    FROM sources
)
SELECT basis, period, source_shape, revision, precedence
FROM (
    SELECT
        ranked.*,
        row_number() OVER (PARTITION BY basis, period ORDER BY precedence DESC, source_shape) AS pick
    FROM ranked
) r
WHERE pick = 1
