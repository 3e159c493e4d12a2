-- One row per MX host address and day that has TLSA: the STARTTLS capture's outcome and the
-- DANE match at that address.
SELECT
    v.date,
    v.name AS host,
    v.address,
    v.dane,
    v.dane_reasons,
    c.reason AS capture_failure,
    c.tls_version,
    c.total_seconds,
    len(c.chain) AS chain_length,
    v.leaf_spki_sha256
FROM lake.dane_verdicts AS v
LEFT JOIN lake.certificate_captures AS c
    ON c.date = v.date AND c.host = v.name AND c.address = v.address
WHERE v.kind = 'address'
