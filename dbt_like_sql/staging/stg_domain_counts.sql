-- Domains counted by day, suffix and everything the headline marts split on: one pass over
-- the day's candidates, scans and verdicts, so that each mart aggregates a small table
-- instead of joining the lake again. `signed` is decided per group, after counting, by the
-- rule stg_domains applies per row (the list test is costly on every row, cheap on groups).
WITH groups AS (
    SELECT date, suffix, parent_ds, own_zone, dnssec, len(mx) > 0 AS has_mx, dane, reasons,
           count(*) AS domains
    FROM stg_domains
    GROUP BY ALL
)
SELECT date, suffix,
       parent_ds
           OR (dnssec IN ('secure', 'bogus') AND own_zone)
           OR list_has_any(reasons, ['unsupported_algorithm', 'unsupported_digest']) AS signed,
       dnssec, has_mx, dane, reasons, domains
FROM groups
