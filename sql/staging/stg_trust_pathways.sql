-- One row per pathway, as its latest snapshot reports it: the merge of the trusts' monthly PTL
-- snapshots (load mode `merge`, keyed on the pipeline's unique_key, pathway_id within the trust
-- that sent it, ordered by its unique_order, the extract month). A pathway reported by several
-- snapshots is one pathway and the latest snapshot's values win. Ingest keeps one row per
-- pathway in each trust's snapshot of a month (a repeat within a month, from the same file or
-- another, is quarantined), so the latest month identifies the row. Only the pathways that
-- several snapshots report are looked up; the rest pass through as they are. (Written as a RIGHT
-- JOIN so that DataFusion builds its hash table on the few repeated pathways, not on every wide
-- row.) Should two rows of one pathway share its latest month, both pass and int_pathways'
-- unique(pathway_id) test stops the build.
WITH reported_again AS (
    SELECT extract_provider, pathway_id, max(extract_month) AS latest_month
    FROM stg_trust_pathway_snapshots
    GROUP BY extract_provider, pathway_id
    HAVING count(*) > 1
)
SELECT s.*
FROM reported_again r
RIGHT JOIN stg_trust_pathway_snapshots s
  ON r.extract_provider = s.extract_provider AND r.pathway_id = s.pathway_id
WHERE r.latest_month IS NULL OR s.extract_month = r.latest_month
