-- One row per domain and day: what the explore views show.
SELECT date, name, suffix, signed, dnssec, reasons, mx, dane, dane_reasons, rollover,
       rollover_reasons, sources
FROM stg_domains
