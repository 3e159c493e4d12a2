-- Per day and MX host with TLSA: DANE outcome and rollover readiness, with the reasons.
SELECT date, host, provider, tlsa_records, dane, dane_reasons, rollover, rollover_reasons, domains
FROM stg_mx_hosts
WHERE tlsa_records > 0
