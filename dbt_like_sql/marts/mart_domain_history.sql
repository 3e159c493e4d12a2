-- materialized: view
-- One row per domain and day: what the explore views show (a view over the lake: ask it for
-- one name and DuckDB reads only what it needs).
SELECT date, name, suffix, signed, dnssec, reasons, mx, dane, dane_reasons, rollover,
       rollover_reasons, sources
FROM stg_domains
