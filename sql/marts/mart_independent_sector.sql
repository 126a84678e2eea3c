-- First treatments delivered by independent-sector providers for the alliance trusts' patients,
-- by month of treatment, referring trust and modality: their share of the trust's first
-- treatments of that modality (every provider) and their share of all its first treatments (every
-- modality and provider). The all-modality count is the trust's published first treatments of the
-- month in mart_activity_recovery (already disclosure-controlled: where it is withheld there, it
-- and the share of all first treatments are empty here), so this mart reveals nothing about it.
WITH treatments AS (
    SELECT treatment_month AS month, provider_code AS referring_trust, coalesce(treatment_modality, 'Unknown') AS modality,
           treating_provider_code
    FROM int_pathways WHERE first_treatment_date IS NOT NULL
),
modality_treatments AS (
    SELECT month, referring_trust, modality, CAST(count(*) AS DOUBLE) AS modality_first_treatments
    FROM treatments GROUP BY month, referring_trust, modality
),
all_modalities AS (
    SELECT month, provider_code AS referring_trust, activity AS first_treatments_all_modalities
    FROM mart_activity_recovery WHERE measure = 'first_treatments'
)
SELECT t.month, t.referring_trust, t.modality, t.treating_provider_code AS independent_provider,
       i.name AS independent_provider_name, i.group_name,
       CAST(count(*) AS DOUBLE) AS treatments, a.modality_first_treatments,
       count(*) / a.modality_first_treatments AS share_of_modality_first_treatments,
       m.first_treatments_all_modalities,
       count(*) / m.first_treatments_all_modalities AS share_of_all_first_treatments
FROM treatments t
JOIN ref_independent_sector i ON i.org_code = t.treating_provider_code
JOIN modality_treatments a ON a.month = t.month AND a.referring_trust = t.referring_trust AND a.modality = t.modality
LEFT JOIN all_modalities m ON m.month = t.month AND m.referring_trust = t.referring_trust
GROUP BY t.month, t.referring_trust, t.modality, t.treating_provider_code, i.name, i.group_name,
         a.modality_first_treatments, m.first_treatments_all_modalities
