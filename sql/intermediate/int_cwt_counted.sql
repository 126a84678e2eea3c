-- The CWT rows that count towards a total, on both bases, with the counting rule of every era
-- written once (here):
--   * a row counts if it is not repeated by another row of the same figures: rows without a
--     modality (28-day FDS, 2WW, 2WW Breast, commissioner-basis 31/62-day first and route rows) all
--     count; where a source publishes ALL MODALITIES rows for an organisation, month, standard and
--     route (the provider extracts' 31- and 62-day rows, old and new standards: ALL MODALITIES by
--     cancer type, and the same patients again by modality for ALL CANCERS) only those count; where
--     it publishes modality rows without them (the commissioner basis' subsequent treatments) the
--     modality rows count;
--   * except 31-day Subsequent (standards before October 2023): each treatment modality was a
--     standard of its own (surgery 94%, anti-cancer drugs 98%, radiotherapy 94%, other none), so
--     its modality rows count and the modality is the row's route; the ALL MODALITIES row repeats them.
-- Provider basis: each trust is placed in its ICB (ODS high-level health geography) and, for the
-- alliances' trusts, in its Cancer Alliance. Commissioner basis: each sub-ICB location (or CCG) is
-- in its ICB of residence (stg_cwt_commissioner) and, for QMF and QMJ, in that ICB's alliance.
WITH rows AS (
    SELECT 'provider' AS basis, c.source_shape, c.month, c.standard, c.org_code, c.org_code_original,
           t.name AS org_name, c.route, c.treatment_modality, c.cancer_type,
           c.total, c.within_standard, c.breaches,
           t.high_level_health_geography AS icb_code, a.alliance
    FROM stg_cwt_provider c
    LEFT JOIN ref_ods_trusts t ON t.org_code = c.org_code
    LEFT JOIN ref_alliance_trusts a ON a.org_code = c.org_code
    UNION ALL
    SELECT 'commissioner', c.source_shape, c.month, c.standard, c.org_code, c.org_code_original,
           c.org_name, c.route, c.treatment_modality, CAST(NULL AS VARCHAR),
           c.total, c.within_standard, c.breaches,
           c.icb_code, a.alliance
    FROM stg_cwt_commissioner c
    LEFT JOIN (SELECT DISTINCT icb_code, alliance FROM ref_alliance_trusts) a ON a.icb_code = c.icb_code
),
flagged AS (
    SELECT r.*,
           bool_or(coalesce(treatment_modality = 'ALL MODALITIES', false)) OVER (
               PARTITION BY basis, month, standard, org_code_original, route
           ) AS has_total
    FROM rows r
)
SELECT
    basis,
    source_shape,
    month,
    standard,
    org_code,
    org_code_original,
    org_name,
    CASE WHEN standard = '31-day Subsequent' THEN treatment_modality ELSE route END AS route,
    -- the modality rows' 'ALL CANCERS' is no cancer type: the mart's 'ALL' roll-up is the total
    CASE WHEN upper(cancer_type) NOT IN ('ALL CANCERS', 'ALL') THEN cancer_type END AS cancer_type,
    total,
    within_standard,
    breaches,
    icb_code,
    alliance
FROM flagged
WHERE CASE
    WHEN standard = '31-day Subsequent' THEN treatment_modality IS NOT NULL AND treatment_modality <> 'ALL MODALITIES'
    ELSE treatment_modality IS NULL OR treatment_modality = 'ALL MODALITIES' OR NOT has_total
END
