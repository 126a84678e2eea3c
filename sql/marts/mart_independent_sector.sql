-- First treatments delivered by independent-sector providers for the alliance trusts' patients,
-- by month of treatment, referring trust and modality: their share of the trust's first
-- treatments of that modality (every provider) and their share of all its first treatments (every
-- modality and provider). The all-modality count is the trust's published first treatments of the
-- month in mart_activity_recovery (already disclosure-controlled: where it is withheld there, it
-- and the share of all first treatments are empty here), so this mart reveals nothing about it.
-- int_pathways is read once: first treatments are counted per treating provider, and a
-- modality's total is the sum over its providers.
WITH by_provider AS (
    SELECT treatment_month AS month, provider_code AS referring_trust,
           coalesce(treatment_modality, 'Unknown') AS modality, treating_provider_code,
           count(*) AS treatments
    FROM int_pathways WHERE first_treatment_date IS NOT NULL
    GROUP BY treatment_month, provider_code, coalesce(treatment_modality, 'Unknown'), treating_provider_code
),
with_modality AS (
    SELECT month, referring_trust, modality, treating_provider_code, treatments,
           sum(treatments) OVER (PARTITION BY month, referring_trust, modality) AS modality_first_treatments
    FROM by_provider
),
all_modalities AS (
    SELECT month, provider_code AS referring_trust, activity AS first_treatments_all_modalities
    FROM mart_activity_recovery WHERE measure = 'first_treatments'
)
SELECT t.month, t.referring_trust, t.modality, t.treating_provider_code AS independent_provider,
       i.name AS independent_provider_name, i.group_name,
       CAST(t.treatments AS DOUBLE) AS treatments,
       CAST(t.modality_first_treatments AS DOUBLE) AS modality_first_treatments,
       t.treatments / CAST(t.modality_first_treatments AS DOUBLE) AS share_of_modality_first_treatments,
       m.first_treatments_all_modalities,
       t.treatments / m.first_treatments_all_modalities AS share_of_all_first_treatments
FROM with_modality t
JOIN ref_independent_sector i ON i.org_code = t.treating_provider_code
LEFT JOIN all_modalities m ON m.month = t.month AND m.referring_trust = t.referring_trust
