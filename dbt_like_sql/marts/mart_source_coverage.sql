-- Per day and source: the names it contributes, how many it listed for the first time that
-- day, and how many no other source has.
SELECT date, p.source,
       count(*) AS names,
       count(*) FILTER (p.first_seen = date) AS first_seen_today,
       count(*) FILTER (n_sources = 1) AS only_here
FROM (SELECT date, unnest(provenance) AS p, len(provenance) AS n_sources
      FROM lake.candidate_domains)
GROUP BY date, p.source
