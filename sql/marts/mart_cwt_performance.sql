-- Cancer waiting times performance by organisation, month, standard and cancer type (with an
-- 'ALL' row per organisation, month and standard), at provider, ICB, alliance and England level,
-- against the operational standard in force that month.
WITH levels AS (
    SELECT 'provider' AS level, org_code, provider_name AS org_name, month, standard, cancer_type,
           total, within_standard, breaches
    FROM int_cwt_counted
    UNION ALL
    SELECT 'icb', c.icb_code, i.icb_name, month, standard, cancer_type, total, within_standard, breaches
    FROM int_cwt_counted c LEFT JOIN ref_icb_names i ON i.icb_code = c.icb_code
    WHERE c.icb_code IS NOT NULL
    UNION ALL
    SELECT 'alliance', alliance, alliance || ' Cancer Alliance', month, standard, cancer_type,
           total, within_standard, breaches
    FROM int_cwt_counted WHERE alliance IS NOT NULL
    UNION ALL
    SELECT 'england', 'ENG', 'England', month, standard, cancer_type, total, within_standard, breaches
    FROM int_cwt_counted
),
summed AS (
    SELECT level, org_code, max(org_name) AS org_name, month, standard,
           coalesce(cancer_type, 'ALL') AS cancer_type,
           sum(total) AS total, sum(within_standard) AS within_standard, sum(breaches) AS breaches
    FROM levels
    GROUP BY level, org_code, month, standard, ROLLUP (cancer_type)
),
measured AS (
    SELECT s.*,
           CASE WHEN total > 0 THEN within_standard / total END AS performance,
           wilson_lower(within_standard, total) AS performance_lower_95,
           wilson_upper(within_standard, total) AS performance_upper_95
    FROM summed s
)
SELECT
    m.level, m.org_code, m.org_name, m.month, m.standard, m.cancer_type,
    m.total, m.within_standard, m.breaches,
    m.performance, m.performance_lower_95, m.performance_upper_95,
    o.threshold AS standard_threshold,
    m.performance - o.threshold AS gap_to_standard,
    a.threshold AS interim_ambition,
    CASE WHEN m.level <> 'england' THEN
        rank() OVER (PARTITION BY m.level, m.month, m.standard, m.cancer_type ORDER BY m.performance DESC NULLS LAST)
    END AS rank_among_peers,
    count(*) OVER (PARTITION BY m.level, m.month, m.standard, m.cancer_type) AS peers
FROM measured m
LEFT JOIN ref_operational_standards o
    ON o.standard = m.standard AND o.kind = 'operational'
   AND m.month >= o.effective_from AND (o.effective_to IS NULL OR m.month <= o.effective_to)
LEFT JOIN ref_operational_standards a
    ON a.standard = m.standard AND a.kind = 'interim_ambition'
   AND m.month >= a.effective_from AND (a.effective_to IS NULL OR m.month <= a.effective_to)
