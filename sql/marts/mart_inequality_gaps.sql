-- Inequality gaps across IMD 2019 quintiles (1 = most deprived): the slope index of inequality
-- (population-weighted regression of the value on the mid-point cumulative rank of each quintile,
-- most deprived first: the fitted difference least − most deprived), the relative index, and the
-- absolute and relative gap between the least and the most deprived quintile. sii and rii are the
-- aggregates of src/stats/udaf.rs (PHE's default: no transform), tested against PHE's values;
-- the denominator of each quintile is its population weight.
-- Indicators: early diagnosis share and FDS performance per alliance and year (from the
-- patient-level pathways), screening coverage per programme and month (all practices).
WITH quintiles AS (
    SELECT 'early_diagnosis_share' AS indicator, alliance AS area, CAST(extract(year FROM fds_date) AS VARCHAR) AS period,
           imd_quintile AS quintile, CAST(count(*) AS DOUBLE) AS denominator,
           CAST(sum(CASE WHEN early_stage THEN 1 ELSE 0 END) AS DOUBLE) AS numerator
    FROM int_pathways
    WHERE fds_outcome = 'CONFIRMED' AND staged AND alliance IS NOT NULL AND imd_quintile IS NOT NULL
    GROUP BY alliance, extract(year FROM fds_date), imd_quintile
    UNION ALL
    SELECT 'fds_performance', alliance, CAST(extract(year FROM fds_date) AS VARCHAR), imd_quintile,
           CAST(count(*) AS DOUBLE), CAST(sum(CASE WHEN fds_within THEN 1 ELSE 0 END) AS DOUBLE)
    FROM int_pathways
    WHERE fds_date IS NOT NULL AND alliance IS NOT NULL AND imd_quintile IS NOT NULL
    GROUP BY alliance, extract(year FROM fds_date), imd_quintile
    UNION ALL
    SELECT 'screening_coverage_' || lower(s.programme), 'All practices', CAST(s.month AS VARCHAR), l.imd_quintile,
           CAST(sum(s.denominator) AS DOUBLE), CAST(sum(s.numerator) AS DOUBLE)
    FROM screening_coverage s
    JOIN ref_gp_practices g ON g.practice_code = s.org_code
    JOIN ref_lsoa_imd l ON l.lsoa_code = g.lsoa_code
    GROUP BY s.programme, s.month, l.imd_quintile
),
summary AS (
    SELECT indicator, area, period, count(*) AS quintiles, sum(denominator) AS denominator,
           sii(quintile, denominator, numerator / denominator) AS sii,
           rii(quintile, denominator, numerator / denominator) AS rii,
           max(CASE WHEN quintile = 1 THEN numerator / denominator END) AS value_most_deprived,
           max(CASE WHEN quintile = 5 THEN numerator / denominator END) AS value_least_deprived,
           min(least(numerator, denominator - numerator)) AS smallest_count
    FROM quintiles GROUP BY indicator, area, period
)
SELECT indicator, area, period, quintiles, denominator,
       CASE WHEN publishable THEN sii END AS sii,
       CASE WHEN publishable THEN rii END AS rii,
       CASE WHEN publishable THEN value_most_deprived END AS value_most_deprived,
       CASE WHEN publishable THEN value_least_deprived END AS value_least_deprived,
       CASE WHEN publishable THEN value_least_deprived - value_most_deprived END AS absolute_gap,
       CASE WHEN publishable THEN (value_least_deprived - value_most_deprived) / value_least_deprived END AS relative_gap,
       NOT publishable AS suppressed
FROM (SELECT *, quintiles = 5 AND smallest_count >= 5 AS publishable FROM summary)
