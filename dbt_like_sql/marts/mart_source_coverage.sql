-- Per day and source: the names it contributes, how many it listed for the first time that
-- day, and how many no other source has.
WITH counts AS (
    SELECT date, name, count(*) AS sources FROM stg_source_names GROUP BY date, name
)
SELECT s.date, s.source,
       count(*) AS names,
       count(*) FILTER (s.first_seen = s.date) AS first_seen_today,
       count(*) FILTER (c.sources = 1) AS only_here
FROM stg_source_names s JOIN counts c USING (date, name)
GROUP BY s.date, s.source
