-- Cancer screening coverage by programme, age band and period, from two sources (`source`):
-- * 'practice_export': the monthly GP-practice export (screening_coverage), per practice (with its
--   borough and the IMD 2019 quintile of its LSOA), per borough and per IMD quintile, against the
--   Acceptable and Achievable thresholds the export carries; period = the month ('2024-03').
-- * 'ohid_fingertips': OHID's published local-authority coverage (Fingertips indicator exports,
--   screening_fingertips) for the 13 NEL and NCL boroughs (the boroughs of ref_lsoa_imd), one
--   borough row per indicator (age band) and period as published ('2024'); month is empty, as
--   OHID publishes a year, and the thresholds are empty, as the export carries none.
-- Coverage is recomputed from numerator and denominator, its interval by wilson_lower/upper;
-- for the OHID rows both reproduce the published value and 95% limits.
WITH practices AS (
    SELECT s.programme, s.month, s.cohort_age_range AS age_band, s.org_code, s.numerator, s.denominator,
           s.acceptable, s.achievable,
           coalesce(g.la_name, 'Unknown') AS borough, coalesce(CAST(l.imd_quintile AS VARCHAR), 'Unknown') AS imd_quintile
    FROM screening_coverage s
    LEFT JOIN ref_gp_practices g ON g.practice_code = s.org_code
    LEFT JOIN ref_lsoa_imd l ON l.lsoa_code = g.lsoa_code
),
levels AS (
    SELECT programme, month, age_band, 'practice' AS level, org_code AS area, borough AS parent, imd_quintile,
           numerator, denominator, acceptable, achievable FROM practices
    UNION ALL
    SELECT programme, month, age_band, 'borough', borough, 'all', CAST(NULL AS VARCHAR), numerator, denominator,
           acceptable, achievable
    FROM practices
    UNION ALL
    SELECT programme, month, age_band, 'imd_quintile', imd_quintile, 'all', imd_quintile AS quintile_of_area, numerator,
           denominator, acceptable, achievable
    FROM practices
),
boroughs AS (
    SELECT DISTINCT la_code, la_name FROM ref_lsoa_imd
),
exported AS (
    SELECT 'practice_export' AS source, programme, month, to_char(month, '%Y-%m') AS period, age_band,
           level, area, parent, imd_quintile,
           CAST(sum(numerator) AS DOUBLE) AS screened, CAST(sum(denominator) AS DOUBLE) AS eligible,
           max(acceptable) AS acceptable, max(achievable) AS achievable
    FROM levels GROUP BY programme, month, age_band, level, area, parent, imd_quintile
),
published AS (
    -- DISTINCT: an export may list a borough under two area types (District and UA) with the same figures.
    SELECT DISTINCT 'ohid_fingertips' AS source,
           CASE WHEN lower(f.indicator_name) LIKE '%cervical%' THEN 'Cervical'
                WHEN lower(f.indicator_name) LIKE '%breast%' THEN 'Breast'
                WHEN lower(f.indicator_name) LIKE '%bowel%' THEN 'Bowel' END AS programme,
           CAST(NULL AS DATE) AS month, f.time_period AS period, replace(f.age, ' yrs', '') AS age_band,
           'borough' AS level, b.la_name AS area, 'all' AS parent, CAST(NULL AS VARCHAR) AS imd_quintile,
           f.count AS screened, f.denominator AS eligible,
           CAST(NULL AS DOUBLE) AS acceptable, CAST(NULL AS DOUBLE) AS achievable
    FROM screening_fingertips f
    JOIN boroughs b ON b.la_code = f.area_code
    WHERE lower(f.indicator_name) LIKE 'cancer screening coverage%' AND f.category_type IS NULL
      AND f.count IS NOT NULL
),
summed AS (
    SELECT source, programme, month, period, age_band, level, area, parent, imd_quintile, screened, eligible,
           acceptable, achievable
    FROM exported
    UNION ALL
    SELECT source, programme, month, period, age_band, level, area, parent, imd_quintile, screened, eligible,
           acceptable, achievable
    FROM published
)
SELECT s.programme, s.month, s.level, s.area, s.parent, s.imd_quintile, s.screened, s.eligible,
       s.eligible - s.screened AS not_screened,
       s.screened / s.eligible AS coverage,
       wilson_lower(s.screened, s.eligible) AS coverage_lower_95,
       wilson_upper(s.screened, s.eligible) AS coverage_upper_95,
       s.acceptable, s.achievable,
       s.screened / s.eligible >= s.acceptable AS meets_acceptable,
       CASE WHEN s.achievable IS NOT NULL THEN s.screened / s.eligible >= s.achievable END AS meets_achievable,
       s.source, s.period, s.age_band,
       CASE WHEN s.level = 'practice' THEN s.area ELSE b.la_code END AS area_code
FROM summed s
LEFT JOIN boroughs b ON s.level = 'borough' AND b.la_name = s.area
WHERE s.eligible > 0
