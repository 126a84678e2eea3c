-- Monthly cancer activity of each trust as a percentage of the same calendar month of 2019:
-- urgent referrals received (month of referral) and first treatments (month of treatment).
-- int_pathways is read once (both measures from one scan); each month's 2019 baseline is taken
-- from the small aggregate by a window over the trust, measure and calendar month.
WITH activity AS (
    SELECT m.measure, p.provider_code,
           CASE m.measure WHEN 'referrals' THEN p.referral_month ELSE p.treatment_month END AS month,
           count(*) AS activity
    FROM int_pathways p
    CROSS JOIN (VALUES ('referrals'), ('first_treatments')) AS m(measure)
    WHERE m.measure = 'referrals' OR p.treatment_month IS NOT NULL
    GROUP BY m.measure, p.provider_code, CASE m.measure WHEN 'referrals' THEN p.referral_month ELSE p.treatment_month END
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
