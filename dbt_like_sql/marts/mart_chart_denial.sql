-- Per day and zone: how the zone proves that names and types do not exist, as seen in the
-- scans' evidence (the NSEC and NSEC3 records of negative answers: no MX, no TLSA at
-- _25._tcp). NSEC3 zones carry their parameters: iterations, salt, opt-out (RFC 5155; RFC 9276
-- asks for 0 iterations and no salt). An NSEC3 record's zone is its owner less the hash label;
-- an NSEC record's is the signer of its RRSIG. Only zones with a denial in the evidence appear.
WITH evidence AS (  -- only the RRsets that hold a denial are split into lines and fields
    SELECT date, unnest(list_filter(evidence, lambda e: contains(e, ' NSEC'))) AS rrset
    FROM lake.domain_scans
    UNION ALL
    SELECT date, unnest(list_filter(evidence, lambda e: contains(e, ' NSEC')))
    FROM lake.mx_host_scans
),
fields AS (
    SELECT date, string_split(regexp_replace(trim(rr), '\s+', ' ', 'g'), ' ') AS f
    FROM (SELECT date, unnest(string_split(rrset, chr(10))) AS rr FROM evidence)
    WHERE rr LIKE '% NSEC3 %' OR rr LIKE '% NSEC %'
),
zones AS (
    SELECT date, regexp_replace(f[1], '^[^.]*\.', '') AS zone, 'NSEC3' AS denial,
           try_cast(f[7] AS INTEGER) AS iterations, f[8] <> '-' AS salted,
           (try_cast(f[6] AS INTEGER) & 1) = 1 AS opt_out
    FROM fields WHERE f[4] = 'NSEC3' AND len(f) >= 9
    UNION ALL
    SELECT date, f[12], 'NSEC', NULL, NULL, NULL
    FROM fields WHERE f[4] = 'RRSIG' AND f[5] = 'NSEC' AND len(f) >= 12
)
SELECT DISTINCT date, zone, denial, iterations, salted, opt_out
FROM zones
