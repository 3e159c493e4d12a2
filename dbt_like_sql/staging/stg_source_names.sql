-- materialized: view
-- One row per (day, candidate, source that listed it), with that source's first and last
-- sighting of the name: the provenance that explains import spikes and decay.
SELECT date, name, suffix, p.source, p.first_seen, p.last_seen
FROM (SELECT date, name, suffix, unnest(provenance) AS p FROM lake.candidate_domains)
