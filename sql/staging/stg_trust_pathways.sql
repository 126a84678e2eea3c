-- One row per pathway, as its latest snapshot reports it: the merge of the trusts' monthly PTL
-- snapshots (load mode `merge`, keyed on the pipeline's unique_key, pathway_id within the trust
-- that sent it, ordered by its unique_order, the extract month). A pathway reported by several
-- snapshots is one pathway and the latest snapshot's values win; ties (two files of one month,
-- which ingest already keeps apart) go to the later file, then the later row.
SELECT * EXCLUDE (snapshot_rank)
FROM (
    SELECT s.*,
           row_number() OVER (
               PARTITION BY s.extract_provider, s.pathway_id
               ORDER BY s.extract_month DESC, s._source_file DESC, s._source_row DESC
           ) AS snapshot_rank
    FROM stg_trust_pathway_snapshots s
)
WHERE snapshot_rank = 1
