-- Domains counted by day, suffix and everything the headline marts split on, so that each mart
-- aggregates a small table instead of the lake. A day is counted from its scans alone: each
-- scan row carries its candidate's suffix and parent DS, and only the few DANE verdicts other
-- than 'n/a' are joined. A day whose scans cannot stand for its candidates (no scans yet,
-- scans written before they carried suffix and parent DS, or other names than the candidates:
-- re-imported after the scan) is counted as stg_domains has it, the candidates joined with
-- their scans (`counted_from` says which). `signed` is decided per group, after counting, by
-- the rule stg_domains applies per row (the list test is costly on every row, cheap on groups).
WITH dane AS (  -- a domain without a verdict counts as 'n/a': only the others need joining
    SELECT date, name, dane FROM lake.dane_verdicts WHERE kind = 'domain' AND dane <> 'n/a'
),
scanned AS (
    SELECT s.date, s.suffix, s.parent_ds, coalesce(s.zone = s.name, false) AS own_zone,
           coalesce(s.dnssec, 'indeterminate') AS dnssec, coalesce(len(s.mx) > 0, false) AS has_mx,
           coalesce(d.dane, 'n/a') AS dane, coalesce(s.reasons, []) AS reasons,
           count(*) AS domains, sum(hash(s.name)) AS names
    FROM (  -- a lake of older scans only has no such columns: NULL, as in older partitions
        SELECT * FROM lake.domain_scans
        UNION ALL BY NAME
        SELECT NULL::VARCHAR AS suffix, NULL::BOOLEAN AS parent_ds WHERE false
    ) AS s
    LEFT JOIN dane AS d ON d.date = s.date AND d.name = s.name
    -- Pushed into the Parquet scan: an older file is skipped, not read, and its day falls
    -- short of its candidates below.
    WHERE s.suffix IS NOT NULL AND s.parent_ds IS NOT NULL
    GROUP BY ALL
),
scan_days AS (SELECT date, sum(domains) AS domains, sum(names) AS names FROM scanned GROUP BY date),
candidate_days AS (
    SELECT date, count(*) AS domains, sum(hash(name)) AS names
    FROM lake.candidate_domains GROUP BY date
),
from_scans AS (  -- days whose scans with suffix and parent DS are the candidates name for name
    SELECT date FROM scan_days JOIN candidate_days USING (date, domains, names)
),
joined AS (  -- every other day with candidates, as stg_domains joins it (usually none)
    SELECT c.date, c.suffix, len(c.ds) > 0 AS parent_ds,
           coalesce(s.zone = c.name, false) AS own_zone,
           coalesce(s.dnssec, 'indeterminate') AS dnssec, coalesce(len(s.mx) > 0, false) AS has_mx,
           coalesce(d.dane, 'n/a') AS dane, coalesce(s.reasons, []) AS reasons,
           count(*) AS domains
    FROM (SELECT date FROM candidate_days ANTI JOIN from_scans USING (date)) AS other_days
    JOIN lake.candidate_domains AS c USING (date)
    LEFT JOIN lake.domain_scans AS s ON s.date = c.date AND s.name = c.name
    LEFT JOIN dane AS d ON d.date = c.date AND d.name = c.name
    GROUP BY ALL
),
groups AS (
    SELECT date, suffix, parent_ds, own_zone, dnssec, has_mx, dane, reasons,
           sum(domains) AS domains, 'scans' AS counted_from
    FROM scanned SEMI JOIN from_scans USING (date)
    GROUP BY ALL
    UNION ALL
    SELECT *, 'candidates' FROM joined
)
SELECT date, suffix,
       parent_ds
           OR (dnssec IN ('secure', 'bogus') AND own_zone)
           OR list_has_any(reasons, ['unsupported_algorithm', 'unsupported_digest']) AS signed,
       dnssec, has_mx, dane, reasons, domains::BIGINT AS domains, counted_from
FROM groups
