-- Cancer screening coverage by programme and month: per GP practice (with its borough and the
-- IMD 2019 quintile of its LSOA), per borough and per IMD quintile, against the Acceptable and
-- Achievable thresholds. Coverage is recomputed from numerator and denominator.
WITH practices AS (
    SELECT s.programme, s.month, s.org_code, s.numerator, s.denominator, s.acceptable, s.achievable,
           coalesce(g.la_name, 'Unknown') AS borough, coalesce(CAST(l.imd_quintile AS VARCHAR), 'Unknown') AS imd_quintile
    FROM screening_coverage s
    LEFT JOIN ref_gp_practices g ON g.practice_code = s.org_code
    LEFT JOIN ref_lsoa_imd l ON l.lsoa_code = g.lsoa_code
),
levels AS (
    SELECT programme, month, 'practice' AS level, org_code AS area, borough AS parent, imd_quintile,
           numerator, denominator, acceptable, achievable FROM practices
    UNION ALL
    SELECT programme, month, 'borough', borough, 'all', CAST(NULL AS VARCHAR), numerator, denominator, acceptable, achievable
    FROM practices
    UNION ALL
    SELECT programme, month, 'imd_quintile', imd_quintile, 'all', imd_quintile AS quintile_of_area, numerator, denominator, acceptable, achievable
    FROM practices
),
summed AS (
    SELECT programme, month, level, area, parent, imd_quintile,
           CAST(sum(numerator) AS DOUBLE) AS screened, CAST(sum(denominator) AS DOUBLE) AS eligible,
           max(acceptable) AS acceptable, max(achievable) AS achievable
    FROM levels GROUP BY programme, month, level, area, parent, imd_quintile
)
SELECT programme, month, level, area, parent, imd_quintile, screened, eligible, eligible - screened AS not_screened,
       screened / eligible AS coverage,
       wilson_lower(screened, eligible) AS coverage_lower_95,
       wilson_upper(screened, eligible) AS coverage_upper_95,
       acceptable, achievable,
       screened / eligible >= acceptable AS meets_acceptable,
       CASE WHEN achievable IS NOT NULL THEN screened / eligible >= achievable END AS meets_achievable
FROM summed
WHERE eligible > 0
