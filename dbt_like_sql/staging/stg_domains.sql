-- materialized: view
-- One row per candidate domain and day (a view: the lake already has a row per name and
-- day, copying it buys nothing): where it came from, its DS, the DNSSEC status of its
-- MX answer, and its DANE verdict. `signed` = the parent holds a DS for it (from the zone
-- source, or, for names only a list knows, proven by the scan: no `no_ds` and its own zone).
SELECT
    c.date,
    c.name,
    c.suffix,
    c.tld,
    len(c.ds) > 0 AS parent_ds,
    coalesce(s.zone = c.name, false) AS own_zone,
    -- stg_domain_counts applies the same rule to its groups: keep the two alike.
    len(c.ds) > 0
        OR coalesce(s.dnssec IN ('secure', 'bogus') AND s.zone = c.name, false)
        OR coalesce(list_has_any(s.reasons, ['unsupported_algorithm', 'unsupported_digest']), false)
        AS signed,
    c.ds,
    c.sources,
    c.first_seen,
    coalesce(s.dnssec, 'indeterminate') AS dnssec,
    coalesce(s.reasons, []) AS reasons,
    coalesce(s.mx, []) AS mx,
    s.zone,
    coalesce(v.dane, 'n/a') AS dane,
    coalesce(v.dane_reasons, []) AS dane_reasons,
    coalesce(v.rollover, 'n/a') AS rollover,
    coalesce(v.rollover_reasons, []) AS rollover_reasons,
    coalesce(v.primaries, []) AS primaries
FROM lake.candidate_domains AS c
LEFT JOIN lake.domain_scans AS s ON s.date = c.date AND s.name = c.name
LEFT JOIN (SELECT * FROM lake.dane_verdicts WHERE kind = 'domain') AS v
    ON v.date = c.date AND v.name = c.name
