-- One row per pathway with everything the marts group by: residence (borough, IMD 2019 quintile,
-- alliance), age band (ten-year and ESP2013 five-year), ethnicity group, the month each clock
-- stopped, and whether each standard was met, by the national CWT rules (SPEC §4, §9):
--   28-day FDS: urgent suspected cancer, breast symptomatic and screening referrals only (not
--     consultant upgrades); within = FDS date − referral ≤ 28 days, counted in the FDS month;
--   62-day: those three routes and consultant upgrades; within = first treatment − referral
--     ≤ 62 days, counted in the treatment month;
--   31-day: decision to treat → first treatment ≤ 31 days, counted in the treatment month.
-- Boundaries are inclusive; a same-day clock stop is 0 days. A pathway outside a standard's
-- routes, or whose clock stops before it starts, is not measured against it: the standard's
-- `*_within` column is NULL (not FALSE), so it is in neither the numerator nor the denominator.
SELECT
    p.*,
    l.la_name AS borough,
    l.imd_decile,
    l.imd_quintile,
    CASE
        WHEN l.la_name IN ('Barking and Dagenham', 'City of London', 'Hackney', 'Havering', 'Newham',
                           'Redbridge', 'Tower Hamlets', 'Waltham Forest') THEN 'North East London'
        WHEN l.la_name IS NOT NULL THEN 'North Central London'
    END AS alliance,
    CASE
        WHEN p.age < 40 THEN '18-39' WHEN p.age < 50 THEN '40-49' WHEN p.age < 60 THEN '50-59'
        WHEN p.age < 70 THEN '60-69' WHEN p.age < 80 THEN '70-79' WHEN p.age IS NOT NULL THEN '80+'
    END AS age_band,
    CASE
        WHEN p.age >= 90 THEN '90+'
        WHEN p.age IS NOT NULL THEN CAST(p.age - p.age % 5 AS VARCHAR) || '-' || CAST(p.age - p.age % 5 + 4 AS VARCHAR)
    END AS esp_band,
    CASE
        WHEN p.ethnic_category IN ('A', 'B', 'C') THEN 'White'
        WHEN p.ethnic_category IN ('D', 'E', 'F', 'G') THEN 'Mixed'
        WHEN p.ethnic_category IN ('H', 'J', 'K', 'L') THEN 'Asian'
        WHEN p.ethnic_category IN ('M', 'N', 'P') THEN 'Black'
        WHEN p.ethnic_category IN ('R', 'S') THEN 'Other'
        ELSE 'Not stated'
    END AS ethnicity_group,
    CAST(date_trunc('month', p.referral_date) AS DATE) AS referral_month,
    CAST(date_trunc('month', p.fds_date) AS DATE) AS fds_month,
    CAST(date_trunc('month', p.first_treatment_date) AS DATE) AS treatment_month,
    p.fds_date - p.referral_date AS days_to_fds,
    p.first_treatment_date - p.referral_date AS days_to_treatment,
    p.first_treatment_date - p.decision_to_treat_date AS days_dtt_to_treatment,
    CASE WHEN p.referral_route IN ('URGENT SUSPECTED CANCER', 'BREAST SYMPTOMATIC', 'SCREENING')
              AND p.fds_date >= p.referral_date
         THEN p.fds_date - p.referral_date <= 28 END AS fds_within,
    CASE WHEN p.referral_route IN ('URGENT SUSPECTED CANCER', 'BREAST SYMPTOMATIC', 'SCREENING', 'CONSULTANT UPGRADE')
              AND p.first_treatment_date >= p.referral_date
         THEN p.first_treatment_date - p.referral_date <= 62 END AS within_62,
    CASE WHEN p.first_treatment_date >= p.decision_to_treat_date
         THEN p.first_treatment_date - p.decision_to_treat_date <= 31 END AS within_31,
    p.stage IN ('1', '2') AS early_stage,
    p.stage IN ('1', '2', '3', '4') AS staged,
    i.org_code IS NOT NULL AS treated_independent
FROM stg_trust_pathways p
LEFT JOIN ref_lsoa_imd l ON l.lsoa_code = p.lsoa_code
LEFT JOIN ref_independent_sector i ON i.org_code = p.treating_provider_code
