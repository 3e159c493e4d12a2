-- One row per MX host and day: its TLSA answer, its zone (the "provider"), how many of the
-- day's domains use it, and its DANE outcome and rollover readiness.
SELECT
    h.date,
    h.name AS host,
    h.zone AS provider,
    h.dnssec,
    h.reasons,
    list_sort(h.tlsa) AS tlsa,  -- DNS gives an RRset in any order: keep one
    len(h.tlsa) AS tlsa_records,
    h.domains,
    coalesce(v.dane, 'n/a') AS dane,
    coalesce(v.dane_reasons, []) AS dane_reasons,
    coalesce(v.rollover, 'n/a') AS rollover,
    coalesce(v.rollover_reasons, []) AS rollover_reasons,
    v.accepts_connections
FROM lake.mx_host_scans AS h
LEFT JOIN (SELECT * FROM lake.dane_verdicts WHERE kind = 'mx_host') AS v
    ON v.date = h.date AND v.name = h.name
