"""The survey's vocabulary: status values and reason codes, stable and documented once.

Every observation gets a status and, when not good, one or more of these reason codes. The lab's
ground truth uses the same codes, so the survey can be held to it code for code. Never rename a
code: the warehouse keeps years of them.
"""

from __future__ import annotations

# DNSSEC status of an answer (RFC 4033/4035).
SECURE, INSECURE, BOGUS, INDETERMINATE = "secure", "insecure", "bogus", "indeterminate"
DNSSEC_STATUSES = (SECURE, INSECURE, BOGUS, INDETERMINATE)

# DANE outcome of a domain, an MX host or an address.
PASS, FAIL, NOT_APPLICABLE = "pass", "fail", "n/a"
DANE_OUTCOMES = (PASS, FAIL, NOT_APPLICABLE)

# Rollover readiness (RFC 7671 §8).
READY, AT_RISK, BOTCHED = "ready", "at_risk", "botched"
ROLLOVER_STATES = (READY, AT_RISK, BOTCHED, NOT_APPLICABLE)

REASONS: dict[str, str] = {
    # Existence and insecurity (not failures).
    "nxdomain": "the name does not exist",
    "no_mx": "the domain has no MX records (NODATA)",
    "no_ds": "the parent proves there is no DS: the zone is unsigned (insecure)",
    "unsupported_algorithm": "only DNSSEC algorithms a validator may not support (RFC 8624): insecure",
    "unsupported_digest": "only DS digest types a validator may not support: insecure",
    # Transport and servers.
    "timeout": "no answer within the deadline",
    "malformed": "the response could not be parsed",
    "network_error": "the query could not be sent (no route, no address family)",
    "refused_by_policy": "not asked: the name or the server is on the opt-out list",
    "query_budget_exceeded": "stopped: the answer needs more queries than the per-target budget",
    "deadline_exceeded": "stopped: the answer took longer than the per-target total deadline",
    "servfail": "SERVFAIL to a query that must work",
    "refused": "REFUSED to a query that must work",
    "notimp": "NOTIMP to a query that must work",
    "formerr": "FORMERR to a query that must work",
    "no_edns": "the server does not support EDNS(0)",
    "do_bit_stripped": "the server ignores the DO bit: no RRSIGs in answers",
    "tcp_failed": "the answer was truncated and TCP to the server failed",
    "lame_delegation": "the delegated nameservers do not serve the zone",
    "ns_inconsistent": "nameservers of one zone serve different SOA serials (a stale secondary)",
    # Chain of trust.
    "ds_no_matching_dnskey": "no DNSKEY matches any DS (digest mismatch or missing key)",
    "dnskey_not_signed_by_ds_key": "the DNSKEY set is not signed by a key a DS points to",
    "revoked_key": "the key a DS points to is revoked",
    # Signatures.
    "rrsig_expired": "signature expired",
    "rrsig_not_yet_valid": "signature not yet valid",
    "rrsig_invalid": "signature does not verify (zone edited after signing)",
    "rrsig_missing": "an RRset of a signed zone has no RRSIG",
    "signer_outside_zone": "the RRSIG signer name is not the zone of the RRset",
    # Denial of existence.
    "denial_bogus": "NXDOMAIN or NODATA without a valid NSEC/NSEC3 proof",
    "nsec3_iterations": "NSEC3 iterations above 0 (RFC 9276)",
    "nsec3_iterations_too_high": "NSEC3 iterations above the validator's limit (RFC 9276 §3.2): "
    "the denial is not checked and the answer is insecure",
    "nsec3_salt": "NSEC3 salt not empty (RFC 9276)",
    "nsec3_optout": "NSEC3 opt-out in a zone that is not a TLD",
    # Zone hygiene, per nameserver.
    "ent_nxdomain": "an empty non-terminal answers NXDOMAIN instead of NODATA",
    "unknown_type_notimp": "NOTIMP instead of NODATA for an unknown type",
    "unknown_type_refused": "REFUSED instead of NODATA for an unknown type",
    # DANE for SMTP (RFC 6698, 7671, 7672).
    "mx_not_secure": "the MX answer is not secure: DANE does not apply",
    "mx_host_insecure": "the MX host's zone is insecure: DANE does not apply",
    "no_tlsa": "the MX host has no TLSA records (securely denied)",
    "tlsa_not_secure": "TLSA records exist but are not secure: DANE senders defer mail",
    "tlsa_unusable": "only TLSA records with usages that are not for SMTP (PKIX-TA/PKIX-EE)",
    "tlsa_malformed": "TLSA data of the wrong length for its matching type",
    "connect_failed": "no primary MX host accepts connections",
    "starttls_not_offered": "the server does not offer STARTTLS",
    "starttls_refused": "the server refuses STARTTLS (e.g. 454)",
    "tls_handshake_failed": "the TLS handshake failed",
    "tlsa_no_match": "the certificate chain matches no usable TLSA record",
    "dane_ta_name_mismatch": "DANE-TA matched but the leaf does not name the MX host",
    "dane_ta_chain_invalid": "DANE-TA matched a CA but the chain from the leaf up to it does not verify (signature, issuer name, not a CA)",
    "dane_ta_expired": "DANE-TA matched and the chain verifies, but a certificate on it is expired or not yet valid",
    # STARTTLS captures (one SMTP session per MX host address).
    "smtp_rejected": "the SMTP server turns the session away: a 4xx/5xx greeting or EHLO reply (421 on connect), still after a retry later",
    "smtp_bad_reply": "the SMTP server's reply is not SMTP: bad syntax, not UTF-8, over the byte cap, or the connection closed mid-dialogue",
    "address_not_allowed": "not contacted: a special-purpose address (or one outside the lab's loopback range in the lab)",
    "bad_host_name": "not contacted: the MX host name is not a valid host name",
    "capture_error": "the capture failed inside the client (a bug): the row keeps the error",
    "chain_empty": "the server presented no certificate",
    "certificate_unparsable": "a presented certificate does not parse (noted; fatal when the leaf's key cannot be found)",
    "chain_out_of_order": "a presented certificate is not followed by its issuer (noted, not fatal)",
    # Rollover readiness.
    "ee_plus_next_ee": "current and next end-entity key published (3 1 1 + 3 1 1)",
    "ee_plus_issuer": "end-entity key and its real issuer published (3 1 1 + 2 1 1)",
    "single_tlsa": "a single TLSA record: no standby key",
    "ta_not_ancestor": "a 2 x x record that is not an ancestor of the leaf",
    "duplicate_key": "two TLSA records for the same key",
    "issuer_changed": "the issuing CA changed under a 2 x x record",
    "botched_rotation": "the key changed and no TLSA record published before the change matches",
}


def check(codes: list[str]) -> list[str]:
    """Fail loudly on a code that is not in the vocabulary; return the codes sorted."""
    unknown = [c for c in codes if c not in REASONS]
    if unknown:
        raise ValueError(f"unknown reason code(s): {', '.join(unknown)}")
    return sorted(set(codes))
