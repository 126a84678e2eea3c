-- 28-day FDS and 62-day performance of each alliance's residents by IMD 2019 quintile and by
-- ethnicity group, per quarter (the quarter the clock stopped). Only pathways measured against a
-- standard by the national rules count (int_pathways: FDS excludes consultant upgrades).
WITH stops AS (
    SELECT alliance, CAST(date_trunc('quarter', fds_date) AS DATE) AS quarter, '28-day FDS' AS standard,
           imd_quintile, ethnicity_group, fds_within AS within
    FROM int_pathways WHERE fds_within IS NOT NULL AND alliance IS NOT NULL
    UNION ALL
    SELECT alliance, CAST(date_trunc('quarter', first_treatment_date) AS DATE), '62-day Combined',
           imd_quintile, ethnicity_group, within_62
    FROM int_pathways WHERE within_62 IS NOT NULL AND alliance IS NOT NULL
),
by_group AS (
    SELECT alliance, quarter, standard, 'imd_quintile' AS dimension,
           coalesce(CAST(imd_quintile AS VARCHAR), 'Unknown') AS group_value, within
    FROM stops
    UNION ALL
    SELECT alliance, quarter, standard, 'ethnicity_group', ethnicity_group, within FROM stops
),
counted AS (
    SELECT alliance, quarter, standard, dimension, group_value,
           CAST(count(*) AS DOUBLE) AS total,
           CAST(sum(CASE WHEN within THEN 1 ELSE 0 END) AS DOUBLE) AS within_standard
    FROM by_group
    GROUP BY alliance, quarter, standard, dimension, group_value
)
SELECT alliance, quarter, standard, dimension, group_value,
       total, within_standard, total - within_standard AS breaches,
       within_standard / total AS performance,
       wilson_lower(within_standard, total) AS performance_lower_95,
       wilson_upper(within_standard, total) AS performance_upper_95
FROM counted
