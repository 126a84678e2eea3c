-- Monthly cancer activity of each trust as a percentage of the same calendar month of 2019:
-- urgent referrals received (month of referral) and first treatments (month of treatment).
WITH activity AS (
    SELECT 'referrals' AS measure, provider_code, referral_month AS month, count(*) AS activity
    FROM int_pathways GROUP BY provider_code, referral_month
    UNION ALL
    SELECT 'first_treatments', provider_code, treatment_month, count(*)
    FROM int_pathways WHERE treatment_month IS NOT NULL GROUP BY provider_code, treatment_month
),
baseline AS (
    SELECT measure, provider_code, extract(month FROM month) AS calendar_month, month AS baseline_month,
           activity AS activity_2019
    FROM activity WHERE extract(year FROM month) = 2019
)
SELECT a.measure, a.provider_code, a.month, CAST(a.activity AS DOUBLE) AS activity,
       b.baseline_month, CAST(b.activity_2019 AS DOUBLE) AS activity_2019,
       100.0 * a.activity / b.activity_2019 AS recovery_percent
FROM activity a
LEFT JOIN baseline b
    ON b.measure = a.measure AND b.provider_code = a.provider_code AND b.calendar_month = extract(month FROM a.month)
