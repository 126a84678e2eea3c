-- First treatments delivered by independent-sector providers for the alliance trusts' patients,
-- by month of treatment, referring trust and modality, with their share of all first treatments.
WITH treatments AS (
    SELECT treatment_month AS month, provider_code AS referring_trust, coalesce(treatment_modality, 'Unknown') AS modality,
           treating_provider_code
    FROM int_pathways WHERE first_treatment_date IS NOT NULL
),
all_treatments AS (
    SELECT month, referring_trust, modality, CAST(count(*) AS DOUBLE) AS all_first_treatments
    FROM treatments GROUP BY month, referring_trust, modality
)
SELECT t.month, t.referring_trust, t.modality, t.treating_provider_code AS independent_provider,
       i.name AS independent_provider_name, i.group_name,
       CAST(count(*) AS DOUBLE) AS treatments, a.all_first_treatments,
       count(*) / a.all_first_treatments AS share_of_first_treatments
FROM treatments t
JOIN ref_independent_sector i ON i.org_code = t.treating_provider_code
JOIN all_treatments a ON a.month = t.month AND a.referring_trust = t.referring_trust AND a.modality = t.modality
GROUP BY t.month, t.referring_trust, t.modality, t.treating_provider_code, i.name, i.group_name, a.all_first_treatments
