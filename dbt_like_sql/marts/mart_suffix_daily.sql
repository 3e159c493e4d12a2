-- Per day and public suffix: candidates, signed (DS), secure MX, DANE-enabled domains, and the
-- two health percentages of the reference survey, over the signed domains:
--   % DNSSEC-problem-free: the MX answer validates (secure);
--   % working DNSKEY: the DS leads to a DNSKEY set that validates (no chain-of-trust reason,
--   not an unsupported algorithm or digest, and an answer came back).
SELECT
    date,
    suffix,
    sum(domains)::BIGINT AS candidates,
    coalesce(sum(domains) FILTER (signed), 0)::BIGINT AS signed,
    coalesce(sum(domains) FILTER (dnssec = 'secure' AND has_mx), 0)::BIGINT AS secure_mx,
    coalesce(sum(domains) FILTER (dane = 'pass'), 0)::BIGINT AS dane_domains,
    round(100.0 * coalesce(sum(domains) FILTER (signed AND dnssec = 'secure'), 0)
          / nullif(sum(domains) FILTER (signed), 0), 2) AS pct_problem_free,
    round(100.0 * coalesce(sum(domains) FILTER (
              signed AND dnssec <> 'indeterminate'
              AND NOT list_has_any(reasons, ['ds_no_matching_dnskey', 'dnskey_not_signed_by_ds_key',
                                             'revoked_key', 'unsupported_algorithm',
                                             'unsupported_digest'])), 0)
          / nullif(sum(domains) FILTER (signed), 0), 2) AS pct_working_dnskey
FROM stg_domain_counts
GROUP BY date, suffix
