-- Open pathways at each month end by trust, from the trusts' PTL snapshots (SPEC-style rule in
-- mart_backlog.toml and the README, "Snapshots and the backlog"):
--   * The month ends are the last days of the months for which any trust sent a snapshot.
--   * A trust's month end is covered by its snapshot of that month or, when it sent none, by its
--     latest snapshot of the grace period before (the month before); a trust with no covering
--     snapshot has no row that month end: its backlog is unknown, not zero and not carried.
--   * A pathway is open at a month end if the covering snapshot reports it, referred on or
--     before the month end and, by that snapshot's values, neither treated nor ruled out by then.
--     A pathway the covering snapshot does not report is closed by absence.
-- Those waiting more than 62 days form the backlog (63–103 and 104+ days).
WITH params AS (
    SELECT INTERVAL '1 month' AS grace
),
snapshots AS (
    SELECT DISTINCT extract_provider, extract_month FROM stg_trust_pathway_snapshots
),
months AS (
    SELECT DISTINCT extract_month AS month FROM snapshots
),
covering AS (
    SELECT m.month, s.extract_provider, max(s.extract_month) AS snapshot_month
    FROM months m
    CROSS JOIN params g
    JOIN snapshots s ON s.extract_month <= m.month AND s.extract_month >= m.month - g.grace
    GROUP BY m.month, s.extract_provider
),
open_at AS (
    SELECT CAST(c.month + INTERVAL '1 month' - INTERVAL '1 day' AS DATE) AS month_end, c.snapshot_month,
           p.provider_code, p.referral_date, p.first_treatment_date, p.fds_outcome, p.fds_date
    FROM covering c
    JOIN stg_trust_pathway_snapshots p
      ON p.extract_provider = c.extract_provider AND p.extract_month = c.snapshot_month
),
waiting AS (
    SELECT month_end, snapshot_month, provider_code, month_end - referral_date AS days_waiting
    FROM open_at
    WHERE referral_date <= month_end
      AND (first_treatment_date IS NULL OR first_treatment_date > month_end)
      AND NOT (coalesce(fds_outcome, '') = 'RULED OUT' AND fds_date <= month_end)
)
SELECT month_end, provider_code,
       max(snapshot_month) AS snapshot_month,
       CAST(count(*) AS DOUBLE) AS open_pathways,
       CAST(sum(CASE WHEN days_waiting > 62 THEN 1 ELSE 0 END) AS DOUBLE) AS backlog_over_62_days,
       CAST(sum(CASE WHEN days_waiting BETWEEN 63 AND 103 THEN 1 ELSE 0 END) AS DOUBLE) AS waiting_63_to_103_days,
       CAST(sum(CASE WHEN days_waiting >= 104 THEN 1 ELSE 0 END) AS DOUBLE) AS waiting_104_days_or_more
FROM waiting
GROUP BY month_end, provider_code
