-- Cancer waiting times performance by basis, organisation, month, standard, route and cancer type,
-- against the operational standard in force that month.
--   basis 'provider':     provider (trust) → ICB of the trust → alliance → England
--   basis 'commissioner': sub-ICB location (CCG before July 2022) of residence → ICB → alliance → England
-- route and cancer_type are rolled up: route = 'ALL' and cancer_type = 'ALL' are the totals (the
-- commissioner basis publishes no cancer type: only 'ALL'). A dimension a source does not publish
-- (no route for FDS on the commissioner basis) has only its 'ALL' row.
-- The standard in force: ref_operational_standards by standard and month, and by route where a
-- standard has one threshold per route (31-day Subsequent before October 2023: one per treatment
-- modality, so its route = 'ALL' row has none).
WITH levels AS (
    SELECT basis, CASE WHEN basis = 'provider' THEN 'provider' ELSE 'sub_icb' END AS level,
           org_code, org_name, month, standard, route, cancer_type, total, within_standard, breaches
    FROM int_cwt_counted
    UNION ALL
    SELECT basis, 'icb', c.icb_code, i.icb_name, month, standard, route, cancer_type,
           total, within_standard, breaches
    FROM int_cwt_counted c LEFT JOIN ref_icb_names i ON i.icb_code = c.icb_code
    WHERE c.icb_code IS NOT NULL
    UNION ALL
    SELECT basis, 'alliance', alliance, alliance || ' Cancer Alliance', month, standard, route, cancer_type,
           total, within_standard, breaches
    FROM int_cwt_counted WHERE alliance IS NOT NULL
    UNION ALL
    SELECT basis, 'england', 'ENG', 'England', month, standard, route, cancer_type,
           total, within_standard, breaches
    FROM int_cwt_counted
),
summed AS (
    SELECT level, basis, org_code, max(org_name) AS org_name, month, standard,
           route, cancer_type, grouping(route) AS all_routes, grouping(cancer_type) AS all_types,
           sum(total) AS total, sum(within_standard) AS within_standard, sum(breaches) AS breaches
    FROM levels
    GROUP BY level, basis, org_code, month, standard, CUBE (route, cancer_type)
),
measured AS (
    SELECT level, basis, org_code, org_name, month, standard,
           CASE WHEN all_routes = 1 THEN 'ALL' ELSE route END AS route,
           CASE WHEN all_types = 1 THEN 'ALL' ELSE cancer_type END AS cancer_type,
           total, within_standard, breaches,
           CASE WHEN total > 0 THEN within_standard / total END AS performance,
           wilson_lower(within_standard, total) AS performance_lower_95,
           wilson_upper(within_standard, total) AS performance_upper_95
    FROM summed
    -- a detail row of a dimension the source does not publish would repeat the total
    WHERE (all_routes = 1 OR route IS NOT NULL) AND (all_types = 1 OR cancer_type IS NOT NULL)
)
SELECT
    m.level, m.basis, m.org_code, m.org_name, m.month, m.standard, m.route, m.cancer_type,
    m.total, m.within_standard, m.breaches,
    m.performance, m.performance_lower_95, m.performance_upper_95,
    o.threshold AS standard_threshold,
    m.performance - o.threshold AS gap_to_standard,
    a.threshold AS interim_ambition,
    CASE WHEN m.level <> 'england' THEN
        rank() OVER (PARTITION BY m.basis, m.level, m.month, m.standard, m.route, m.cancer_type
                     ORDER BY m.performance DESC NULLS LAST)
    END AS rank_among_peers,
    count(*) OVER (PARTITION BY m.basis, m.level, m.month, m.standard, m.route, m.cancer_type) AS peers
FROM measured m
LEFT JOIN ref_operational_standards o
    ON o.standard = m.standard AND o.kind = 'operational' AND (o.route IS NULL OR o.route = m.route)
   AND m.month >= o.effective_from AND (o.effective_to IS NULL OR m.month <= o.effective_to)
LEFT JOIN ref_operational_standards a
    ON a.standard = m.standard AND a.kind = 'interim_ambition' AND (a.route IS NULL OR a.route = m.route)
   AND m.month >= a.effective_from AND (a.effective_to IS NULL OR m.month <= a.effective_to)
