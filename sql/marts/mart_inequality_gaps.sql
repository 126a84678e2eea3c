-- Inequality gaps across IMD 2019 quintiles (1 = most deprived): the slope index of inequality
-- (population-weighted regression of the value on the mid-point cumulative rank of each quintile,
-- most deprived first: the fitted difference least − most deprived), the relative index, and the
-- absolute and relative gap between the least and the most deprived quintile. sii and rii are the
-- aggregates of src/stats/udaf.rs (PHE's default: no transform), tested against PHE's values;
-- the denominator of each quintile is its population weight.
-- Indicators: early diagnosis share per alliance and year, FDS performance per alliance and
-- quarter, screening coverage per programme and month (all practices of the practice export; OHID's
-- borough rows have no quintiles).
-- The quintiles are read from the published, disclosure-controlled marts, never from the
-- patient-level pathways: a figure here is a function of published cells only, so it cannot
-- reveal a count those marts withhold. A gap is published only where all five quintiles are.
WITH quintiles AS (
    SELECT 'early_diagnosis_share' AS indicator, alliance AS area, CAST(year AS VARCHAR) AS period,
           CAST(group_value AS BIGINT) AS quintile, staged AS denominator, early AS numerator
    FROM mart_early_diagnosis
    WHERE dimension = 'imd_quintile' AND group_value IN ('1', '2', '3', '4', '5')
    UNION ALL
    SELECT 'fds_performance', alliance, CAST(quarter AS VARCHAR), CAST(group_value AS BIGINT), total, within_standard
    FROM mart_waits_by_group
    WHERE standard = '28-day FDS' AND dimension = 'imd_quintile' AND group_value IN ('1', '2', '3', '4', '5')
    UNION ALL
    SELECT 'screening_coverage_' || lower(programme), 'All practices', CAST(month AS VARCHAR), CAST(area AS BIGINT),
           eligible, screened
    FROM mart_screening_coverage
    WHERE source = 'practice_export' AND level = 'imd_quintile' AND area IN ('1', '2', '3', '4', '5')
),
summary AS (
    SELECT indicator, area, period, count(*) AS quintiles, count(numerator) AS published_quintiles,
           sum(denominator) AS denominator,
           sii(quintile, denominator, numerator / denominator) AS sii,
           rii(quintile, denominator, numerator / denominator) AS rii,
           max(CASE WHEN quintile = 1 THEN numerator / denominator END) AS value_most_deprived,
           max(CASE WHEN quintile = 5 THEN numerator / denominator END) AS value_least_deprived,
           min(least(numerator, denominator - numerator)) AS smallest_count
    FROM quintiles GROUP BY indicator, area, period
)
SELECT indicator, area, period, quintiles, CASE WHEN publishable THEN denominator END AS denominator,
       CASE WHEN publishable THEN sii END AS sii,
       CASE WHEN publishable THEN rii END AS rii,
       CASE WHEN publishable THEN value_most_deprived END AS value_most_deprived,
       CASE WHEN publishable THEN value_least_deprived END AS value_least_deprived,
       CASE WHEN publishable THEN value_least_deprived - value_most_deprived END AS absolute_gap,
       CASE WHEN publishable THEN (value_least_deprived - value_most_deprived) / value_least_deprived END AS relative_gap,
       NOT publishable AS suppressed
FROM (SELECT *, quintiles = 5 AND published_quintiles = 5 AND smallest_count >= 5 AS publishable FROM summary)
