-- Share of staged cancers diagnosed at stage 1 or 2, by year of diagnosis, for each alliance's
-- residents, by IMD quintile, ethnicity group, age band, sex and borough. int_pathways is read
-- once: each staged cancer is unnested into its five dimensions.
WITH by_group AS (
    SELECT alliance, CAST(extract(year FROM fds_date) AS BIGINT) AS year,
           unnest(['imd_quintile', 'ethnicity_group', 'age_band', 'sex', 'borough']) AS dimension,
           unnest([coalesce(CAST(imd_quintile AS VARCHAR), 'Unknown'), ethnicity_group,
                   coalesce(age_band, 'Unknown'), coalesce(sex, 'Unknown'), coalesce(borough, 'Unknown')]) AS group_value,
           early_stage
    FROM int_pathways
    WHERE fds_outcome = 'CONFIRMED' AND staged AND alliance IS NOT NULL
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
