-- Per day and public suffix: candidates, signed (DS), secure MX, DANE-enabled domains, and the
-- two health percentages of the reference survey, over the signed domains:
--   % DNSSEC-problem-free: the MX answer validates (secure);
--   % working DNSKEY: the DS leads to a DNSKEY set that validates (no chain-of-trust reason,
--   not an unsupported algorithm or digest, and an answer came back).
SELECT
    date,
    suffix,
    count(*) AS candidates,
    count(*) FILTER (signed) AS signed,
    count(*) FILTER (dnssec = 'secure' AND len(mx) > 0) AS secure_mx,
    count(*) FILTER (dane = 'pass') AS dane_domains,
    round(100.0 * count(*) FILTER (signed AND dnssec = 'secure')
          / nullif(count(*) FILTER (signed), 0), 2) AS pct_problem_free,
    round(100.0 * count(*) FILTER (
              signed AND dnssec <> 'indeterminate'
              AND NOT list_has_any(reasons, ['ds_no_matching_dnskey', 'dnskey_not_signed_by_ds_key',
                                             'revoked_key', 'unsupported_algorithm',
                                             'unsupported_digest']))
          / nullif(count(*) FILTER (signed), 0), 2) AS pct_working_dnskey
FROM stg_domains
GROUP BY date, suffix
