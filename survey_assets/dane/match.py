"""DANE matching for SMTP (RFC 6698, 7671, 7672): which TLSA records match which certificate.

Pure code, no I/O. A DANE-enforcing SMTP client accepts a chain when a usable TLSA record
matches it: DANE-EE(3) matches the leaf and ignores names and dates; DANE-TA(2) matches a CA
certificate of the presented chain (or, for `2 1 0`, a public key that signed one), after which
the chain from the leaf up to that trust anchor must verify (signatures, issuer names, CA flags,
validity at `now`) and the leaf must name the MX host (RFC 7672 §3.2.3). PKIX-TA(0) and
PKIX-EE(1) are not for SMTP (RFC 7672 §3.1.3); unknown parameters are unusable (RFC 7671 §4);
data of the wrong length for its matching type is malformed.

Chain verification is done here rather than with `cryptography.x509.verification`: that
verifier applies the Web PKI profile (EKU, SAN required, no CN-ID, its own extension policy) and
says only "failed", while DANE-TA needs RFC 7672's rules (CN-ID when there is no DNS-ID, any
intermediate or key as anchor) and the survey needs the reason. Signatures are checked with the
issuer's public key as `cryptography` exposes it (RSA PKCS#1 v1.5 and PSS, ECDSA, Ed25519,
Ed448, DSA).

The SubjectPublicKeyInfo of selector 1 is cut out of the DER by a small walker instead of being
re-encoded from a parsed key, so that certificates `cryptography` refuses or re-encodes
differently (a negative serial, an unusual key type) still match exactly as served.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

__all__ = ["Tlsa", "CertInfo", "RecordResult", "DaneResult", "match", "parse_tlsa", "names_match"]

DANE_TA, DANE_EE = 2, 3
DIGEST_LENGTH = {1: 32, 2: 64}
MAX_CHAIN = 10  # links from the leaf to its trust anchor, at most (as OpenSSL's default depth)

# Record statuses.
MATCHED = "matched"  # the record decides a pass
NO_MATCH = "no_match"
UNUSABLE = "unusable"  # usage 0/1, or a selector or matching type not defined
MALFORMED = "malformed"  # data of the wrong length, or text that does not parse
TA_CHAIN_INVALID = "ta_chain_invalid"  # matched a CA, but the chain up to it does not verify
TA_EXPIRED = "ta_expired"  # ... verifies, but a certificate on it is outside its validity
TA_NAME_MISMATCH = "ta_name_mismatch"  # ... verifies, but the leaf does not name the host

# Reason codes (survey_assets.reasons), best progress first.
_REASON_OF = {
    TA_NAME_MISMATCH: "dane_ta_name_mismatch",
    TA_EXPIRED: "dane_ta_expired",
    TA_CHAIN_INVALID: "dane_ta_chain_invalid",
}


@dataclass(frozen=True)
class Tlsa:
    usage: int
    selector: int
    mtype: int
    data: bytes

    @property
    def text(self) -> str:
        return f"{self.usage} {self.selector} {self.mtype} {self.data.hex()}"

    @property
    def problem(self) -> str | None:
        """UNUSABLE, MALFORMED or None (usable)."""
        if self.usage not in (DANE_TA, DANE_EE) or self.selector not in (0, 1):
            return UNUSABLE
        if self.mtype not in (0, 1, 2):
            return UNUSABLE
        expected = DIGEST_LENGTH.get(self.mtype)
        if not self.data or (expected is not None and len(self.data) != expected):
            return MALFORMED
        return None


def parse_tlsa(text: str) -> Tlsa:
    """A TLSA record from presentation text "u s m hex" (hex may be split by spaces)."""
    fields = text.split()
    if len(fields) < 4:
        raise ValueError(f"TLSA {text!r}: expected usage, selector, matching type and data")
    try:
        usage, selector, mtype = (int(f) for f in fields[:3])
        data = bytes.fromhex("".join(fields[3:]))
    except ValueError:
        raise ValueError(f"TLSA {text[:80]!r}: not numbers and hex") from None
    if not all(0 <= v <= 255 for v in (usage, selector, mtype)):
        raise ValueError(f"TLSA {text[:80]!r}: a field out of 0..255")
    return Tlsa(usage, selector, mtype, data)


# --- certificates --------------------------------------------------------------------------------
def _tlv(der: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, end) of the DER element at `pos`."""
    if pos + 2 > len(der):
        raise ValueError("truncated DER")
    tag, first = der[pos], der[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > len(der):
            raise ValueError("bad DER length")
        length = int.from_bytes(der[pos : pos + count], "big")
        pos += count
    if pos + length > len(der):
        raise ValueError("truncated DER")
    return tag, pos, pos + length


def spki_der(cert_der: bytes) -> bytes:
    """The SubjectPublicKeyInfo element of a certificate, byte for byte as served."""
    tag, start, _ = _tlv(cert_der, 0)  # Certificate
    if tag != 0x30:
        raise ValueError("not a SEQUENCE")
    tag, pos, tbs_end = _tlv(cert_der, start)  # TBSCertificate
    if tag != 0x30:
        raise ValueError("no TBSCertificate")
    if cert_der[pos] == 0xA0:  # [0] version
        pos = _tlv(cert_der, pos)[2]
    for _ in range(5):  # serialNumber, signature, issuer, validity, subject
        pos = _tlv(cert_der, pos)[2]
    tag, _, end = _tlv(cert_der, pos)
    if tag != 0x30 or end > tbs_end:
        raise ValueError("no SubjectPublicKeyInfo")
    return cert_der[pos:end]


def _digest(data: bytes, mtype: int) -> bytes:
    if mtype == 1:
        return hashlib.sha256(data).digest()
    if mtype == 2:
        return hashlib.sha512(data).digest()
    return data


@dataclass
class CertInfo:
    """One certificate of a presented chain, as reports show it."""

    depth: int
    sha256: str  # of the DER
    spki_sha256: str | None  # of the SubjectPublicKeyInfo; None when it cannot be found
    subject: str | None = None
    issuer: str | None = None
    not_before: str | None = None
    not_after: str | None = None
    error: str | None = None  # why it does not parse (cryptography's word)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class _Cert:
    """A presented certificate: DER, the parts matching needs, and the parsed form if any."""

    def __init__(self, depth: int, der: bytes) -> None:
        self.depth, self.der = depth, der
        try:
            self.spki: bytes | None = spki_der(der)
        except (ValueError, IndexError):
            self.spki = None
        self.parsed: x509.Certificate | None = None
        self.error: str | None = None
        try:
            with warnings.catch_warnings():  # a negative serial is data here, not our problem
                warnings.simplefilter("ignore")
                self.parsed = x509.load_der_x509_certificate(der)
                self.parsed.issuer, self.parsed.subject  # noqa: B018 (lazily parsed: fail here)
        except Exception as exc:  # hostile DER reaches every corner of the parser
            self.parsed, self.error = None, f"{type(exc).__name__}: {exc}"[:200]

    def selected(self, selector: int) -> bytes | None:
        return self.der if selector == 0 else self.spki

    def info(self) -> CertInfo:
        c = self.parsed
        info = CertInfo(
            depth=self.depth,
            sha256=hashlib.sha256(self.der).hexdigest(),
            spki_sha256=hashlib.sha256(self.spki).hexdigest() if self.spki else None,
            error=self.error,
        )
        if c is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                info.subject, info.issuer = c.subject.rfc4514_string(), c.issuer.rfc4514_string()
                info.not_before = c.not_valid_before_utc.isoformat()
                info.not_after = c.not_valid_after_utc.isoformat()
        return info


def _signed_by(cert: x509.Certificate, key: object) -> bool:
    """Does `key` verify the signature on `cert`?"""
    try:
        tbs, sig = cert.tbs_certificate_bytes, cert.signature
        if isinstance(key, rsa.RSAPublicKey):
            params = cert.signature_algorithm_parameters
            pad = (
                params if isinstance(params, padding.PSS | padding.PKCS1v15) else padding.PKCS1v15()
            )
            key.verify(sig, tbs, pad, cert.signature_hash_algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig, tbs, ec.ECDSA(cert.signature_hash_algorithm))
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(sig, tbs)
        elif isinstance(key, dsa.DSAPublicKey):
            key.verify(sig, tbs, cert.signature_hash_algorithm)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


def _public_key(cert: x509.Certificate) -> object | None:
    try:
        return cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return cert.version == x509.Version.v1  # a v1 certificate has no extensions at all
    except Exception:
        return False
    if not bc.ca:
        return False
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        return ku.key_cert_sign
    except x509.ExtensionNotFound:
        return True
    except Exception:
        return False


def _valid_at(cert: x509.Certificate, now: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


# --- names (RFC 7672 §3.2.3) ---------------------------------------------------------------------
def _presented_names(cert: x509.Certificate) -> list[str]:
    """DNS-IDs; the CN-IDs only when there is no DNS-ID."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns_ids = [n for n in san.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        dns_ids = []
    except Exception:
        return []
    if dns_ids:
        return dns_ids
    try:
        return [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    except Exception:
        return []


def _name_matches(presented: str, reference: str) -> bool:
    presented = presented.strip().rstrip(".").lower()
    if presented.startswith("*."):
        # A wildcard is only ever the whole left-most label and stands for exactly one label;
        # it must sit above at least two labels (no "*.com").
        rest = presented[2:]
        first, _, parent = reference.partition(".")
        return bool(first) and "*" not in rest and rest.count(".") >= 1 and parent == rest
    return "*" not in presented and presented == reference


def names_match(cert: x509.Certificate, host: str) -> bool:
    """Does the certificate name `host` (the MX host, the TLSA base domain)?"""
    reference = host.strip().rstrip(".").lower()
    try:
        reference = (
            reference.encode("idna").decode("ascii") if not reference.isascii() else reference
        )
    except UnicodeError:
        return False
    return any(_name_matches(n, reference) for n in _presented_names(cert))


# --- matching -------------------------------------------------------------------------------------
@dataclass
class RecordResult:
    """What became of one TLSA record of the RRset."""

    index: int  # position in the RRset as given
    text: str
    usage: int | None  # None when the text does not parse
    status: str  # MATCHED, NO_MATCH, UNUSABLE, MALFORMED, TA_*
    depths: list[int] = field(default_factory=list)  # certificates its data matched (0 = leaf)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class DaneResult:
    """The DANE verdict on one presented chain against one TLSA RRset."""

    ok: bool
    reason: str | None  # a reason code when not ok
    records: list[RecordResult]
    certs: list[CertInfo]
    ta_path: list[int] = field(default_factory=list)  # depths leaf→anchor of a passing DANE-TA
    notes: list[str] = field(
        default_factory=list
    )  # e.g. chain_out_of_order, certificate_unparsable

    @property
    def usable(self) -> list[RecordResult]:
        return [r for r in self.records if r.status not in (UNUSABLE, MALFORMED)]

    def matched(self, usage: int | None = None) -> list[RecordResult]:
        """Records that decide a pass (of one usage when given)."""
        return [r for r in self.records if r.status == MATCHED and usage in (None, r.usage)]


def _path_to_anchor(
    certs: list[_Cert], anchors: set[int], anchor_keys: list[object]
) -> tuple[list[int], bool] | None:
    """Depths from the leaf up to a trust anchor (a presented certificate in `anchors`, or a
    bare key that signed the last one), following issuer names and signatures; with whether it
    ended at a bare key. None when no such path exists."""
    leaf = certs[0].parsed
    if leaf is None:
        return None
    path, current = [0], leaf
    for _ in range(MAX_CHAIN):
        for key in anchor_keys:
            if _signed_by(current, key):
                return path, True
        candidates = [
            c for c in certs[1:]
            if c.parsed is not None and c.depth not in path and c.parsed.subject == current.issuer
        ]  # fmt: skip
        candidates.sort(key=lambda c: (c.depth not in anchors, c.depth))  # an anchor first
        for cand in candidates:
            key = _public_key(cand.parsed)
            if key is not None and _signed_by(current, key):
                path.append(cand.depth)
                if cand.depth in anchors:
                    return path, False
                current = cand.parsed
                break
        else:
            return None
    return None


def _check_path(certs: list[_Cert], path: list[int], host: str, now: dt.datetime) -> str | None:
    """Why a leaf→anchor path fails DANE-TA, or None when it passes."""
    parsed = [certs[d].parsed for d in path]
    if any(not _is_ca(c) for c in parsed[1:]):
        return TA_CHAIN_INVALID
    if any(not _valid_at(c, now) for c in parsed):
        return TA_EXPIRED
    if not names_match(parsed[0], host):
        return TA_NAME_MISMATCH
    return None


def match(
    records: Sequence[Tlsa | str], chain: Sequence[bytes], host: str, now: dt.datetime
) -> DaneResult:
    """Match a presented chain (DER, leaf first, as served) against a TLSA RRset."""
    now = now if now.tzinfo else now.replace(tzinfo=dt.UTC)
    certs = [_Cert(depth, der) for depth, der in enumerate(chain)]
    infos = [c.info() for c in certs]
    parsed_records: list[Tlsa | None] = []
    results: list[RecordResult] = []
    for index, record in enumerate(records):
        try:
            tlsa = record if isinstance(record, Tlsa) else parse_tlsa(record)
        except ValueError:
            parsed_records.append(None)
            results.append(RecordResult(index, str(record)[:300], None, MALFORMED))
            continue
        parsed_records.append(tlsa)
        results.append(RecordResult(index, tlsa.text, tlsa.usage, tlsa.problem or NO_MATCH))
    notes = _chain_notes(certs)
    result = DaneResult(False, None, results, infos, notes=notes)
    if not certs:
        result.reason = "chain_empty"
        return result
    # Which certificate each usable record's data matches.
    for tlsa, rec in zip(parsed_records, results, strict=True):
        if tlsa is None or rec.status != NO_MATCH:
            continue
        for cert in certs if tlsa.usage == DANE_TA else certs[:1]:
            selected = cert.selected(tlsa.selector)
            if selected is not None and _digest(selected, tlsa.mtype) == tlsa.data:
                rec.depths.append(cert.depth)
    # DANE-EE: the leaf's data is all that counts.
    for tlsa, rec in zip(parsed_records, results, strict=True):
        if tlsa is not None and tlsa.usage == DANE_EE and rec.depths:
            rec.status = MATCHED
    # DANE-TA: each record's anchors, then a verified path from the leaf to one of them.
    for tlsa, rec in zip(parsed_records, results, strict=True):
        if tlsa is None or tlsa.usage != DANE_TA or rec.status != NO_MATCH:
            continue
        anchors = {d for d in rec.depths if d > 0}  # the leaf is no anchor of itself
        keys = []
        if not anchors and tlsa.selector == 1 and tlsa.mtype == 0:
            keys = _bare_key(tlsa.data)  # RFC 7671 §5.2.2: an anchor key not in the chain
        rec.depths = sorted(anchors)
        if not anchors and not keys:
            continue
        found = _path_to_anchor(certs, anchors, keys)
        if found is None:  # a bare key that signed nothing presented matched nothing
            rec.status = TA_CHAIN_INVALID if anchors else NO_MATCH
            continue
        path, bare = found
        if bare:
            rec.depths = [-1]  # matched a key that is not in the chain
        rec.status = _check_path(certs, path, host, now) or MATCHED
        if rec.status == MATCHED and not result.ta_path:
            result.ta_path = path
    if any(r.status == MATCHED for r in results):
        result.ok = True
        return result
    for status in (TA_NAME_MISMATCH, TA_EXPIRED, TA_CHAIN_INVALID):
        if any(r.status == status for r in results):
            result.reason = _REASON_OF[status]
            return result
    result.reason = "tlsa_no_match"
    if certs[0].spki is None:
        result.reason = "certificate_unparsable"
    return result


def _bare_key(spki: bytes) -> list[object]:
    try:
        return [serialization.load_der_public_key(spki)]
    except (ValueError, UnsupportedAlgorithm):
        return []


def _chain_notes(certs: list[_Cert]) -> list[str]:
    notes = []
    if any(c.parsed is None for c in certs):
        notes.append("certificate_unparsable")
    parsed = [c.parsed for c in certs]
    # Each certificate should be followed by its issuer (RFC 8446 §4.4.2 lets TLS 1.3 servers
    # send extras, but an issuer must follow what it issued): note, never fail, the disorder.
    for child, parent in zip(parsed, parsed[1:], strict=False):
        if child is None or parent is None:
            continue
        if child.issuer != parent.subject and child.issuer != child.subject:
            notes.append("chain_out_of_order")
            break
    return notes
