-- The CWT rows that count towards a total: every 28-day FDS row, and for the 31- and 62-day
-- standards only the ALL MODALITIES rows (the modality rows repeat them split by modality).
-- Each provider is placed in its ICB (ODS high-level health geography) and, for the ten trusts of
-- the two alliances, in its Cancer Alliance.
SELECT
    c.month,
    c.standard,
    c.org_code,
    c.org_code_original,
    coalesce(c.cancer_type, 'ALL') AS cancer_type,
    c.total,
    c.within_standard,
    c.breaches,
    t.name AS provider_name,
    t.high_level_health_geography AS icb_code,
    a.alliance
FROM stg_cwt_provider c
LEFT JOIN ref_ods_trusts t ON t.org_code = c.org_code
LEFT JOIN ref_alliance_trusts a ON a.org_code = c.org_code
WHERE c.standard = '28-day FDS' OR c.treatment_modality = 'ALL MODALITIES'
