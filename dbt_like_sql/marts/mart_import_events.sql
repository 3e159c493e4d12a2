-- Days when a source was imported for the first time, or again after a gap of more than a day
-- (a weekly list): the imports that make steps in the counts. Charts draw them as annotations;
-- the import-spike check uses them to explain jumps. The survey's first day is not an event.
WITH days AS (SELECT DISTINCT date, source FROM stg_imports WHERE status = 'ok'),
seq AS (
    SELECT date, source, lag(date) OVER (PARTITION BY source ORDER BY date) AS previous
    FROM days
),
added AS (
    SELECT date, source, count(*) AS names_added, list_sort(list(DISTINCT suffix)) AS suffixes
    FROM stg_source_firsts GROUP BY date, source
)
SELECT s.date, s.source,
       CASE WHEN s.previous IS NULL THEN 'first import' ELSE 're-import' END AS kind,
       coalesce(a.names_added, 0) AS names_added,
       coalesce(a.suffixes, []) AS suffixes
FROM seq s LEFT JOIN added a USING (date, source)
WHERE (s.previous IS NULL OR s.date - s.previous > 1)
  AND s.date > (SELECT min(date) FROM days)
