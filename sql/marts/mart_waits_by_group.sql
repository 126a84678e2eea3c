-- 28-day FDS and 62-day performance of each alliance's residents by IMD 2019 quintile and by
-- ethnicity group, per quarter (the quarter the clock stopped). Only pathways measured against a
-- standard by the national rules count (int_pathways: FDS excludes consultant upgrades).
-- int_pathways is read once: each pathway is paired with the two standards and the two
-- dimensions by joins on constant lists (DataFusion inlines a CTE where it is used, so a UNION
-- over a CTE would scan the 20-million-row model once per branch).
WITH stops AS (
    SELECT alliance, quarter, standard, imd_quintile, ethnicity_group, within
    FROM (
        SELECT p.alliance, s.standard, p.imd_quintile, p.ethnicity_group,
               CASE s.standard
                   WHEN '28-day FDS' THEN CAST(date_trunc('quarter', p.fds_date) AS DATE)
                   ELSE CAST(date_trunc('quarter', p.first_treatment_date) AS DATE)
               END AS quarter,
               CASE s.standard WHEN '28-day FDS' THEN p.fds_within ELSE p.within_62 END AS within
        FROM int_pathways p
        CROSS JOIN (VALUES ('28-day FDS'), ('62-day Combined')) AS s(standard)
        WHERE p.alliance IS NOT NULL AND (p.fds_within IS NOT NULL OR p.within_62 IS NOT NULL)
    )
    WHERE within IS NOT NULL
),
by_group AS (
    SELECT alliance, quarter, standard, d.dimension,
           CASE d.dimension
               WHEN 'imd_quintile' THEN coalesce(CAST(imd_quintile AS VARCHAR), 'Unknown')
               ELSE ethnicity_group
           END AS group_value,
           within
    FROM stops
    CROSS JOIN (VALUES ('imd_quintile'), ('ethnicity_group')) AS d(dimension)
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
