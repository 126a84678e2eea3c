-- The four trusts' PTL snapshots in one shape: one row per pathway per monthly snapshot that
-- reports it (load mode `merge`: a pathway still open at a month end is reported again the next
-- month). Provider codes are mapped to the current trust (the code as sent is kept); each row
-- keeps its snapshot (extract_month, extract_provider) and the file and row it came from.
WITH all_trusts AS (
    SELECT * FROM trust_pathways_r1h
    UNION ALL SELECT * FROM trust_pathways_ral
    UNION ALL SELECT * FROM trust_pathways_rqx
    UNION ALL SELECT * FROM trust_pathways_rrv
)
SELECT
    t.pathway_id,
    t.patient_pseudonym,
    t.provider_code AS provider_code_original,
    coalesce(s.new_code, t.provider_code) AS provider_code,
    t.commissioner_code AS commissioner_code_original,
    coalesce(c.new_code, t.commissioner_code) AS commissioner_code,
    t.referral_date,
    t.referral_route,
    t.suspected_cancer,
    t.first_seen_date,
    t.fds_date,
    t.fds_outcome,
    t.decision_to_treat_date,
    t.first_treatment_date,
    t.treatment_modality,
    t.treating_provider_code,
    t.stage,
    t.age,
    t.sex,
    t.ethnic_category,
    t.lsoa_code,
    t.extract_month,
    t.extract_provider,
    t._source_file,
    t._source_row
FROM all_trusts t
LEFT JOIN ref_org_successors s ON s.old_code = t.provider_code AND s.kind = 'trust_merger'
LEFT JOIN ref_org_successors c ON c.old_code = t.commissioner_code AND c.kind = 'ccg_merger'
