-- Open pathways at each month end by trust: referred on or before the month end and neither ruled
-- out nor treated by then; those waiting more than 62 days form the backlog (63–103 and 104+ days).
WITH month_ends AS (
    SELECT DISTINCT CAST(referral_month + INTERVAL '1 month' - INTERVAL '1 day' AS DATE) AS month_end
    FROM int_pathways
),
open_at AS (
    SELECT e.month_end, p.provider_code, e.month_end - p.referral_date AS days_waiting
    FROM int_pathways p
    JOIN month_ends e ON p.referral_date <= e.month_end
    WHERE (p.first_treatment_date IS NULL OR p.first_treatment_date > e.month_end)
      AND NOT (coalesce(p.fds_outcome, '') = 'RULED OUT' AND p.fds_date <= e.month_end)
)
SELECT month_end, provider_code,
       CAST(count(*) AS DOUBLE) AS open_pathways,
       CAST(sum(CASE WHEN days_waiting > 62 THEN 1 ELSE 0 END) AS DOUBLE) AS backlog_over_62_days,
       CAST(sum(CASE WHEN days_waiting BETWEEN 63 AND 103 THEN 1 ELSE 0 END) AS DOUBLE) AS waiting_63_to_103_days,
       CAST(sum(CASE WHEN days_waiting >= 104 THEN 1 ELSE 0 END) AS DOUBLE) AS waiting_104_days_or_more
FROM open_at
GROUP BY month_end, provider_code
