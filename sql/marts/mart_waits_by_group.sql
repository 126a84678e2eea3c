-- 28-day FDS and 62-day performance of each alliance's residents by IMD 2019 quintile and by
-- ethnicity group, per quarter (the quarter the clock stopped). Only pathways measured against a
-- standard by the national rules count (int_pathways: FDS excludes consultant upgrades).
-- int_pathways is read once: each pathway row is unnested into its two standards, then each
-- clock stop into its two dimensions (DataFusion inlines a CTE where it is used, so UNIONs over
-- a CTE would scan the 20-million-row model once per branch; a cross join with a constant list
-- builds on the large side and emits one batch per row).
WITH stops AS (
    SELECT alliance, imd_quintile, ethnicity_group,
           unnest(['28-day FDS', '62-day Combined']) AS standard,
           unnest([CAST(date_trunc('quarter', fds_date) AS DATE),
                   CAST(date_trunc('quarter', first_treatment_date) AS DATE)]) AS quarter,
           unnest([fds_within, within_62]) AS within
    FROM int_pathways
    WHERE alliance IS NOT NULL AND (fds_within IS NOT NULL OR within_62 IS NOT NULL)
),
by_group AS (
    SELECT alliance, quarter, standard,
           unnest(['imd_quintile', 'ethnicity_group']) AS dimension,
           unnest([coalesce(CAST(imd_quintile AS VARCHAR), 'Unknown'), ethnicity_group]) AS group_value,
           within
    FROM stops
    WHERE within IS NOT NULL
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
