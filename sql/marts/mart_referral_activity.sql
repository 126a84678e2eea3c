-- Patients seen after an urgent referral (suspected cancer to first outpatient attendance, plus
-- breast symptomatic to first hospital assessment) per provider and month, as NHS England
-- publishes them in the monthly provider workbooks, and as a percentage of a baseline month: the
-- same calendar month of 2019 when loaded, else the month configured for the measure in
-- ref_activity_baseline. Provider codes are mapped to the current trust (the published code is
-- summed into its successor). Published, already-controlled statistics: not re-suppressed.
WITH seen AS (
    SELECT
        'referrals_seen' AS measure,
        coalesce(s.new_code, r.org_code) AS provider_code,
        r.period AS month,
        sum(r.total_seen) AS activity,
        sum(r.seen_within_14_days) AS seen_within_14_days
    FROM cwt_referrals_seen r
    LEFT JOIN ref_org_successors s
        ON s.old_code = r.org_code AND s.kind = 'trust_merger'
    GROUP BY coalesce(s.new_code, r.org_code), r.period
)
SELECT
    a.measure,
    a.provider_code,
    a.month,
    CAST(a.activity AS DOUBLE) AS activity,
    CAST(a.seen_within_14_days AS DOUBLE) AS seen_within_14_days,
    100.0 * a.seen_within_14_days / nullif(a.activity, 0) AS seen_within_14_days_percent,
    coalesce(b2019.month, bc.month) AS baseline_month,
    CAST(coalesce(b2019.activity, bc.activity) AS DOUBLE) AS baseline_activity,
    100.0 * a.activity / nullif(coalesce(b2019.activity, bc.activity), 0) AS recovery_percent
FROM seen a
LEFT JOIN seen b2019
    ON b2019.measure = a.measure AND b2019.provider_code = a.provider_code
    AND extract(year FROM b2019.month) = 2019 AND extract(month FROM b2019.month) = extract(month FROM a.month)
LEFT JOIN ref_activity_baseline c
    ON c.measure = a.measure
LEFT JOIN seen bc
    ON bc.measure = a.measure AND bc.provider_code = a.provider_code AND bc.month = c.baseline_month
