-- CWT CRS provider extract, provider codes mapped to the current trust (the published code kept).
SELECT
    p.period AS month,
    p.financial_year,
    p.standard,
    p.org_code AS org_code_original,
    coalesce(s.new_code, p.org_code) AS org_code,
    p.route,
    p.treatment_modality,
    p.cancer_type,
    p.total,
    p.within_standard,
    p.breaches
FROM cwt_provider p
LEFT JOIN ref_org_successors s
    ON s.old_code = p.org_code AND s.kind = 'trust_merger'
