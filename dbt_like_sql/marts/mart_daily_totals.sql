-- Per day: the headline numbers. DANE providers are the distinct zones of MX hosts that
-- have secure TLSA records and serve at least one DANE-enabled domain.
WITH domains AS (
    SELECT date, sum(candidates) AS candidates, sum(signed) AS signed,
           sum(secure_mx) AS secure_mx, sum(dane_domains) AS dane_domains
    FROM mart_suffix_daily GROUP BY date
),
providers AS (
    SELECT date, count(DISTINCT provider) AS dane_providers, sum(tlsa_hosts) AS tlsa_hosts
    FROM mart_dane_providers GROUP BY date
)
SELECT d.date, d.candidates::BIGINT AS candidates, d.signed::BIGINT AS signed,
       d.secure_mx::BIGINT AS secure_mx, d.dane_domains::BIGINT AS dane_domains,
       coalesce(p.dane_providers, 0) AS dane_providers,
       coalesce(p.tlsa_hosts, 0)::BIGINT AS tlsa_hosts,
       round(100.0 * d.dane_domains / nullif(d.secure_mx, 0), 2) AS pct_dane_of_secure_mx
FROM domains d LEFT JOIN providers p USING (date)
