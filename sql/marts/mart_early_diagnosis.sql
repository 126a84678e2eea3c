-- Share of staged cancers diagnosed at stage 1 or 2, by year of diagnosis, for each alliance's
-- residents, by IMD quintile, ethnicity group, age band, sex and borough. int_pathways is read
-- once: each staged cancer is paired with the five dimensions by a join on a constant list.
WITH staged AS (
    SELECT alliance, CAST(extract(year FROM fds_date) AS BIGINT) AS year,
           coalesce(CAST(imd_quintile AS VARCHAR), 'Unknown') AS imd_quintile, ethnicity_group,
           coalesce(age_band, 'Unknown') AS age_band, coalesce(sex, 'Unknown') AS sex,
           coalesce(borough, 'Unknown') AS borough, early_stage
    FROM int_pathways
    WHERE fds_outcome = 'CONFIRMED' AND staged AND alliance IS NOT NULL
),
by_group AS (
    SELECT alliance, year, d.dimension,
           CASE d.dimension
               WHEN 'imd_quintile' THEN imd_quintile
               WHEN 'ethnicity_group' THEN ethnicity_group
               WHEN 'age_band' THEN age_band
               WHEN 'sex' THEN sex
               ELSE borough
           END AS group_value,
           early_stage
    FROM staged
    CROSS JOIN (VALUES ('imd_quintile'), ('ethnicity_group'), ('age_band'), ('sex'), ('borough')) AS d(dimension)
),
counted AS (
    SELECT alliance, year, dimension, group_value,
           CAST(count(*) AS DOUBLE) AS staged,
           CAST(sum(CASE WHEN early_stage THEN 1 ELSE 0 END) AS DOUBLE) AS early
    FROM by_group GROUP BY alliance, year, dimension, group_value
)
SELECT alliance, year, dimension, group_value, staged, early, staged - early AS late,
       early / staged AS early_share,
       wilson_lower(early, staged) AS early_share_lower_95,
       wilson_upper(early, staged) AS early_share_upper_95
FROM counted
