-- Monthly cancer activity of each trust as a percentage of the same calendar month of 2019:
-- urgent referrals received (month of referral) and first treatments (month of treatment).
-- int_pathways is read once (each pathway unnested into its two measures); each month's 2019
-- baseline is taken from the small aggregate by a window over the trust, measure and calendar
-- month.
WITH per_pathway AS (
    SELECT provider_code,
           unnest(['referrals', 'first_treatments']) AS measure,
           unnest([referral_month, treatment_month]) AS month
    FROM int_pathways
),
activity AS (
    SELECT measure, provider_code, month, count(*) AS activity
    FROM per_pathway
    WHERE measure = 'referrals' OR month IS NOT NULL
    GROUP BY measure, provider_code, month
),
with_baseline AS (
    SELECT measure, provider_code, month, activity,
           max(CASE WHEN extract(year FROM month) = 2019 THEN month END)
               OVER (PARTITION BY measure, provider_code, extract(month FROM month)) AS baseline_month,
           max(CASE WHEN extract(year FROM month) = 2019 THEN activity END)
               OVER (PARTITION BY measure, provider_code, extract(month FROM month)) AS activity_2019
    FROM activity
)
SELECT measure, provider_code, month, CAST(activity AS DOUBLE) AS activity,
       baseline_month, CAST(activity_2019 AS DOUBLE) AS activity_2019,
       100.0 * activity / activity_2019 AS recovery_percent
FROM with_baseline
