-- Urgent suspected-cancer referrals per 100,000 residents a year, crude and directly
-- age-standardised (European Standard Population 2013 from ref_esp2013, Dobson 95% interval), by
-- year of referral, for each borough and each IMD 2019 quintile of the two alliances. Population:
-- ONS mid-2019 by LSOA. Rates are annualised over the months of data in the year: the intervals
-- are computed on the raw referral count and then scaled by 12 / months (the crude rate's count
-- interval on an annualised count would be too narrow; Dobson scales exactly, so the DSR
-- functions take per = 100000 * 12 / months). dsr, dsr_lower and dsr_upper are the aggregates
-- of src/stats/udaf.rs (null below 10 referrals), tested against PHE's published values.
WITH referrals AS (
    SELECT CAST(extract(year FROM referral_date) AS BIGINT) AS year, borough,
           CAST(imd_quintile AS VARCHAR) AS imd_quintile, esp_band, referral_month
    FROM int_pathways
    WHERE referral_route = 'URGENT SUSPECTED CANCER' AND borough IS NOT NULL AND esp_band IS NOT NULL
),
months AS (
    SELECT year, CAST(count(DISTINCT referral_month) AS DOUBLE) AS months_covered FROM referrals GROUP BY year
),
residents AS (
    SELECT p.la_name AS borough, CAST(l.imd_quintile AS VARCHAR) AS imd_quintile, p.age_band AS esp_band,
           p.population
    FROM ref_population p JOIN ref_lsoa_imd l ON l.lsoa_code = p.lsoa_code
),
area_band AS (
    SELECT 'borough' AS dimension, borough AS area, esp_band, population FROM residents
    UNION ALL SELECT 'imd_quintile', imd_quintile, esp_band, population FROM residents
),
population AS (
    SELECT dimension, area, esp_band, sum(population) AS population FROM area_band GROUP BY dimension, area, esp_band
),
counts AS (
    SELECT year, 'borough' AS dimension, borough AS area, esp_band, count(*) AS referrals FROM referrals
    GROUP BY year, borough, esp_band
    UNION ALL
    SELECT year, 'imd_quintile', imd_quintile, esp_band, count(*) FROM referrals GROUP BY year, imd_quintile, esp_band
),
years AS (SELECT DISTINCT year FROM referrals),
banded AS (
    SELECT y.year, p.dimension, p.area, p.esp_band, p.population, e.esp2013 AS weight,
           CAST(coalesce(c.referrals, 0) AS DOUBLE) AS referrals, m.months_covered
    FROM population p
    CROSS JOIN years y
    JOIN ref_esp2013 e ON e.age_band = p.esp_band
    JOIN months m ON m.year = y.year
    LEFT JOIN counts c ON c.year = y.year AND c.dimension = p.dimension AND c.area = p.area AND c.esp_band = p.esp_band
),
summed AS (
    SELECT year, dimension, area, max(months_covered) AS months_covered,
           sum(referrals) AS referrals, sum(population) AS population,
           dsr(referrals, population, weight, 100000.0 * 12.0 / months_covered) AS dsr,
           dsr_lower(referrals, population, weight, 100000.0 * 12.0 / months_covered) AS dsr_lower_95,
           dsr_upper(referrals, population, weight, 100000.0 * 12.0 / months_covered) AS dsr_upper_95
    FROM banded WHERE population > 0
    GROUP BY year, dimension, area
)
SELECT year, dimension, area, months_covered, referrals, population,
       referrals / population * 100000.0 * 12.0 / months_covered AS crude_rate,
       rate_lower(referrals, population, 100000.0) * 12.0 / months_covered AS crude_rate_lower_95,
       rate_upper(referrals, population, 100000.0) * 12.0 / months_covered AS crude_rate_upper_95,
       dsr, dsr_lower_95, dsr_upper_95
FROM summed
