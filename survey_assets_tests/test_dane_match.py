"""The DANE matcher against certificates made here, with expectations computed here.

TLSA data is computed in this file from `cryptography`'s own encodings (DER, SubjectPublicKeyInfo)
and hashlib, independent of the matcher's DER walker; DANE-TA chain verdicts on Web-PKI-shaped
chains are held against `cryptography.x509.verification`, an independent path validator.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import warnings

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import DNSName, PolicyBuilder, Store, VerificationError

from survey_assets import reasons as R
from survey_assets.dane import match as M

NOW = dt.datetime(2026, 11, 9, 12, tzinfo=dt.UTC)
HOST = "mx.example.net."
DER = serialization.Encoding.DER
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


# --- making certificates -------------------------------------------------------------------------
_KEYS: dict[str, object] = {}


def key(kind: str, label: str = ""):
    """A private key of a kind, made once per (kind, label)."""
    if (kind, label) not in _KEYS:
        _KEYS[kind, label] = {
            "ec256": lambda: ec.generate_private_key(ec.SECP256R1()),
            "ec384": lambda: ec.generate_private_key(ec.SECP384R1()),
            "rsa": lambda: rsa.generate_private_key(65537, 2048),
            "rsa-pss": lambda: rsa.generate_private_key(65537, 2048),
            "ed25519": ed25519.Ed25519PrivateKey.generate,
            "ed448": ed448.Ed448PrivateKey.generate,
        }[kind]()
    return _KEYS[kind, label]


def _sign_args(kind: str) -> dict:
    if kind.startswith("ed"):
        return {"algorithm": None}
    if kind == "rsa-pss":
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        return {"algorithm": hashes.SHA256(), "rsa_padding": pss}
    return {"algorithm": hashes.SHA384() if kind == "ec384" else hashes.SHA256()}


class Made:
    """A certificate made in the test, with its key and key kind."""

    def __init__(self, cert: x509.Certificate, private, kind: str) -> None:
        self.cert, self.key, self.kind = cert, private, kind

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(DER)

    @property
    def spki(self) -> bytes:
        return self.cert.public_key().public_bytes(DER, SPKI)


def make(
    cn: str, kind: str = "ec256", issuer: Made | None = None, *, ca: bool = False,
    names: tuple[str, ...] | None = None, not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None, label: str = "", serial: int = 0x1234,
    san: bool = True, key_cert_sign: bool = True,
) -> Made:  # fmt: skip
    private = key(kind, label or cn)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(private.public_key())
        .serial_number(serial)
        .not_valid_before(not_before or dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(not_after or dt.datetime(2028, 1, 1, tzinfo=dt.UTC))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(private.public_key()), critical=False)
    )  # fmt: skip
    if issuer is not None:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key())
        builder = builder.add_extension(aki, critical=False)
    usage = dict.fromkeys(
        ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
         "encipher_only", "decipher_only"), False,
    )  # fmt: skip
    builder = builder.add_extension(
        x509.KeyUsage(digital_signature=True, key_cert_sign=ca and key_cert_sign, crl_sign=ca,
                      **usage), critical=True,
    )  # fmt: skip
    if not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        if san:
            dns = [x509.DNSName(n) for n in (names or (cn,))]
            builder = builder.add_extension(x509.SubjectAlternativeName(dns), critical=False)
    signer = issuer or Made(None, private, kind)  # type: ignore[arg-type]
    cert = builder.sign(signer.key, **_sign_args(signer.kind))
    return Made(cert, private, kind)


def hierarchy(leaf_kind: str = "ec256", ca_kind: str = "ec256", **leaf_options):
    """root → intermediate → leaf for HOST."""
    root = make(f"Root {ca_kind}", ca_kind, ca=True)
    inter = make(f"Intermediate {ca_kind}", ca_kind, root, ca=True)
    leaf = make(leaf_options.pop("cn", HOST.rstrip(".")), leaf_kind, inter, **leaf_options)
    return root, inter, leaf


def tlsa(usage: int, selector: int, mtype: int, cert: Made) -> str:
    """A TLSA record for `cert`, computed here (not by the matcher)."""
    data = cert.der if selector == 0 else cert.spki
    data = {0: data, 1: hashlib.sha256(data).digest(), 2: hashlib.sha512(data).digest()}[mtype]
    return f"{usage} {selector} {mtype} {data.hex()}"


def oracle_accepts(chain: list[Made], anchor: Made, host: str = HOST) -> bool:
    """cryptography's own path validator, the anchor in its store, as an independent opinion."""
    verifier = (
        PolicyBuilder().store(Store([anchor.cert])).time(NOW)
        .build_server_verifier(DNSName(host.rstrip(".")))
    )  # fmt: skip
    try:
        verifier.verify(chain[0].cert, [c.cert for c in chain[1:]])
    except VerificationError:
        return False
    return True


# --- every (usage, selector, matching type) ------------------------------------------------------
COMBOS = list(itertools.product((0, 1, 2, 3), (0, 1), (0, 1, 2)))


@pytest.mark.parametrize(("usage", "selector", "mtype"), COMBOS,
                         ids=[f"{u}{s}{m}" for u, s, m in COMBOS])  # fmt: skip
def test_every_combination(usage, selector, mtype):
    root, inter, leaf = hierarchy()
    chain = [leaf.der, inter.der]
    target = leaf if usage in (1, 3) else inter
    result = M.match([tlsa(usage, selector, mtype, target)], chain, HOST, NOW)
    record = result.records[0]
    if usage in (0, 1):  # PKIX usages are not for SMTP (RFC 7672 §3.1.3)
        assert (result.ok, result.reason, record.status) == (False, "tlsa_no_match", M.UNUSABLE)
        return
    assert result.ok and result.reason is None
    assert record.status == M.MATCHED
    assert record.depths == ([0] if usage == 3 else [1])
    if usage == 2:
        assert result.ta_path == [0, 1]
        assert oracle_accepts([leaf, inter], inter)
    # The same record for another certificate matches nothing.
    other = make("other.example.net", label=f"other{usage}{selector}{mtype}")
    miss = M.match([tlsa(usage, selector, mtype, other)], chain, HOST, NOW)
    assert (miss.ok, miss.reason, miss.records[0].status) == (False, "tlsa_no_match", M.NO_MATCH)


@pytest.mark.parametrize("mtype", [1, 2])
@pytest.mark.parametrize("delta", [-1, 1, -32])
def test_wrong_length_is_malformed(mtype, delta):
    _, inter, leaf = hierarchy()
    good = tlsa(3, 1, mtype, leaf)
    data = bytes.fromhex(good.split()[3])
    data = data[:delta] if delta < 0 else data + b"\x00" * delta
    result = M.match([f"3 1 {mtype} {data.hex()}", good], [leaf.der, inter.der], HOST, NOW)
    assert [r.status for r in result.records] == [M.MALFORMED, M.MATCHED]
    alone = M.match([f"3 1 {mtype} {data.hex()}"], [leaf.der, inter.der], HOST, NOW)
    assert (alone.ok, alone.records[0].status) == (False, M.MALFORMED)


@pytest.mark.parametrize(
    "text",
    ["3 1 1 zz", "3 1", "3 1 1", "300 1 1 00", "x 1 1 00", "3 1 0 "],
)
def test_record_text_that_does_not_parse_is_malformed(text):
    _, inter, leaf = hierarchy()
    result = M.match([text], [leaf.der, inter.der], HOST, NOW)
    assert (result.ok, result.records[0].status, result.records[0].usage) == (
        False,
        M.MALFORMED,
        None,
    )


@pytest.mark.parametrize("record", ["3 2 1", "3 1 3", "4 1 1", "255 255 255"])
def test_unknown_parameters_are_unusable(record):
    _, inter, leaf = hierarchy()
    result = M.match([f"{record} {'00' * 32}"], [leaf.der, inter.der], HOST, NOW)
    assert result.records[0].status == M.UNUSABLE and not result.ok


def test_presentation_hex_split_by_spaces():
    _, inter, leaf = hierarchy()
    u, s, m, data = tlsa(3, 0, 0, leaf).split()
    spaced = f"{u} {s} {m} " + " ".join(data[i : i + 56] for i in range(0, len(data), 56))
    assert M.match([spaced], [leaf.der, inter.der], HOST, NOW).ok


# --- key types -----------------------------------------------------------------------------------
KINDS = ["ec256", "ec384", "rsa", "rsa-pss", "ed25519", "ed448"]


@pytest.mark.parametrize("ca_kind", KINDS)
@pytest.mark.parametrize("leaf_kind", ["ec256", "rsa", "ed25519"])
def test_key_types(leaf_kind, ca_kind):
    root, inter, leaf = hierarchy(leaf_kind, ca_kind)
    chain = [leaf.der, inter.der, root.der]
    for selector, mtype in ((0, 1), (1, 0), (1, 2)):
        assert M.match([tlsa(3, selector, mtype, leaf)], chain, HOST, NOW).ok
        ta = M.match([tlsa(2, selector, mtype, root)], chain, HOST, NOW)
        assert ta.ok and ta.ta_path == [0, 1, 2], (leaf_kind, ca_kind, ta)
    if {leaf_kind, ca_kind} <= {"ec256", "ec384", "rsa", "rsa-pss"}:
        assert oracle_accepts([leaf, inter, root], root)


def test_signature_by_another_key_of_the_same_name():
    """An impostor intermediate with the real one's name: names chain, signatures do not."""
    root, inter, _ = hierarchy()
    impostor = make(inter.cert.subject.rfc4514_string()[3:], issuer=root, ca=True,
                    label="impostor")  # fmt: skip
    leaf = make(HOST.rstrip("."), issuer=impostor, label="impostor-leaf")
    # The chain presents the real intermediate, which did not sign this leaf.
    result = M.match([tlsa(2, 1, 1, inter)], [leaf.der, inter.der], HOST, NOW)
    assert (result.ok, result.reason) == (False, "dane_ta_chain_invalid")
    assert not oracle_accepts([leaf, inter], inter)
    # DANE-EE does not care who signed the leaf.
    assert M.match([tlsa(3, 1, 1, leaf)], [leaf.der, inter.der], HOST, NOW).ok


# --- DANE-TA: validity, CA flags, names ----------------------------------------------------------
def test_ta_checks_dates_ee_does_not():
    past = dict(not_before=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
                not_after=dt.datetime(2021, 1, 1, tzinfo=dt.UTC))  # fmt: skip
    root, inter, leaf = hierarchy(label="expired-leaf", **past)
    chain = [leaf.der, inter.der]
    assert M.match([tlsa(3, 1, 1, leaf)], chain, HOST, NOW).ok
    result = M.match([tlsa(2, 1, 1, inter)], chain, HOST, NOW)
    assert (result.ok, result.reason, result.records[0].status) == (
        False, "dane_ta_expired", M.TA_EXPIRED,
    )  # fmt: skip
    assert not oracle_accepts([leaf, inter], inter)
    future = make(HOST.rstrip("."), issuer=inter, label="future",
                  not_before=dt.datetime(2027, 1, 1, tzinfo=dt.UTC))  # fmt: skip
    assert (
        M.match([tlsa(2, 1, 1, inter)], [future.der, inter.der], HOST, NOW).reason
        == "dane_ta_expired"
    )


def test_expired_intermediate_under_the_anchor():
    root = make("Root", ca=True)
    old = make("Old Intermediate", issuer=root, ca=True,
               not_before=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
               not_after=dt.datetime(2025, 1, 1, tzinfo=dt.UTC))  # fmt: skip
    leaf = make(HOST.rstrip("."), issuer=old, label="under-old")
    chain = [leaf.der, old.der, root.der]
    assert M.match([tlsa(2, 0, 1, root)], chain, HOST, NOW).reason == "dane_ta_expired"
    assert not oracle_accepts([leaf, old, root], root)


def test_intermediate_that_is_not_a_ca():
    root = make("Root", ca=True)
    fake = make("Not A CA", issuer=root, label="not-ca", san=False)  # ca=False
    leaf = make(HOST.rstrip("."), issuer=fake, label="under-fake")
    chain = [leaf.der, fake.der, root.der]
    assert M.match([tlsa(2, 1, 1, root)], chain, HOST, NOW).reason == "dane_ta_chain_invalid"
    assert not oracle_accepts([leaf, fake, root], root)
    no_sign = make("No keyCertSign", issuer=root, ca=True, key_cert_sign=False, label="nosign")
    leaf2 = make(HOST.rstrip("."), issuer=no_sign, label="under-nosign")
    result = M.match([tlsa(2, 1, 1, root)], [leaf2.der, no_sign.der, root.der], HOST, NOW)
    assert result.reason == "dane_ta_chain_invalid"


@pytest.mark.parametrize(
    ("names", "host", "ok"),
    [
        (("mx.example.net",), "mx.example.net.", True),
        (("MX.Example.NET",), "mx.example.net", True),
        (("mx.example.net.",), "mx.example.net", True),
        (("*.example.net",), "mx.example.net.", True),
        (("*.example.net",), "a.mx.example.net.", False),  # one label only
        (("*.example.net",), "example.net.", False),
        (("*.net",), "example.net.", False),  # never above two labels
        (("mx*.example.net",), "mx1.example.net.", False),  # partial-label wildcards are not
        (("m*.example.net",), "mx.example.net.", False),
        (("other.example.net", "mx.example.net"), "mx.example.net.", True),
        (("other.example.net",), "mx.example.net.", False),
    ],
)
def test_ta_names(names, host, ok):
    _, inter, _ = hierarchy()
    leaf = make(names[0], issuer=inter, names=names, label="names-" + "-".join(names))
    result = M.match([tlsa(2, 1, 1, inter)], [leaf.der, inter.der], host, NOW)
    assert result.ok is ok
    if not ok:
        assert result.reason == "dane_ta_name_mismatch"
    # DANE-EE ignores names.
    assert M.match([tlsa(3, 1, 1, leaf)], [leaf.der, inter.der], host, NOW).ok


def test_cn_only_when_there_is_no_dns_id():
    _, inter, _ = hierarchy()
    cn_only = make("mx.example.net", issuer=inter, san=False, label="cn-only")
    assert M.match([tlsa(2, 1, 1, inter)], [cn_only.der, inter.der], HOST, NOW).ok
    # With a DNS-ID present, a matching CN does not count.
    both = make("mx.example.net", issuer=inter, names=("other.example.net",), label="cn-and-san")
    result = M.match([tlsa(2, 1, 1, inter)], [both.der, inter.der], HOST, NOW)
    assert result.reason == "dane_ta_name_mismatch"


# --- chains: long, out of order, odd ---------------------------------------------------------------
def _long_chain(length: int) -> list[Made]:
    """leaf, then `length` CAs, each issued by the next; the last is a self-signed root."""
    root = make(f"Root of {length}", ca=True)
    cas = [root]
    for i in range(length - 1):
        cas.append(make(f"CA {i} of {length}", issuer=cas[-1], ca=True))
    leaf = make(HOST.rstrip("."), issuer=cas[-1], label=f"leaf of {length}")
    return [leaf, *reversed(cas)]


def test_long_chain_anchor_at_every_depth():
    chain = _long_chain(8)
    ders = [c.der for c in chain]
    for depth in range(1, len(chain)):
        result = M.match([tlsa(2, 1, 1, chain[depth])], ders, HOST, NOW)
        assert result.ok and result.ta_path == list(range(depth + 1)), depth
        assert result.records[0].depths == [depth]
    assert oracle_accepts(chain, chain[-1])


def test_too_long_a_path_is_refused():
    chain = _long_chain(M.MAX_CHAIN + 2)
    result = M.match([tlsa(2, 1, 1, chain[-1])], [c.der for c in chain], HOST, NOW)
    assert (result.ok, result.reason) == (False, "dane_ta_chain_invalid")
    near = M.match([tlsa(2, 1, 1, chain[3])], [c.der for c in chain], HOST, NOW)
    assert near.ok


def test_out_of_order_chain_passes_with_a_note():
    root, inter, leaf = hierarchy()
    result = M.match([tlsa(2, 1, 1, root)], [leaf.der, root.der, inter.der], HOST, NOW)
    assert result.ok and result.ta_path == [0, 2, 1]
    assert "chain_out_of_order" in result.notes
    assert (
        "chain_out_of_order"
        not in M.match([tlsa(2, 1, 1, root)], [leaf.der, inter.der, root.der], HOST, NOW).notes
    )


def test_anchor_key_not_in_the_chain():
    """2 1 0 carries the whole key: an anchor that the server does not send (RFC 7671 §5.2.2)."""
    root, inter, leaf = hierarchy()
    result = M.match([tlsa(2, 1, 0, root)], [leaf.der, inter.der], HOST, NOW)
    assert result.ok and result.records[0].depths == [-1] and result.ta_path == [0, 1]
    # A digest of a key that is not in the chain cannot be followed.
    assert (
        M.match([tlsa(2, 1, 1, root)], [leaf.der, inter.der], HOST, NOW).reason == "tlsa_no_match"
    )


def test_leaf_is_not_its_own_anchor():
    _, inter, leaf = hierarchy()
    result = M.match([tlsa(2, 0, 1, leaf)], [leaf.der, inter.der], HOST, NOW)
    assert (result.ok, result.reason) == (False, "tlsa_no_match")


def test_which_record_matched_which_certificate():
    root, inter, leaf = hierarchy()
    other = make("standby.example.net", label="standby")
    records = [tlsa(3, 1, 1, other), tlsa(2, 0, 2, inter), tlsa(3, 0, 1, leaf), tlsa(1, 1, 1, leaf)]
    result = M.match(records, [leaf.der, inter.der, root.der], HOST, NOW)
    assert [(r.index, r.status, r.depths) for r in result.records] == [
        (0, M.NO_MATCH, []), (1, M.MATCHED, [1]), (2, M.MATCHED, [0]), (3, M.UNUSABLE, []),
    ]  # fmt: skip
    assert [r.index for r in result.matched(3)] == [2]
    assert [c.sha256 for c in result.certs] == [hashlib.sha256(c.der).hexdigest()
                                                for c in (leaf, inter, root)]  # fmt: skip
    assert result.certs[0].spki_sha256 == hashlib.sha256(leaf.spki).hexdigest()
    assert result.certs[1].subject == inter.cert.subject.rfc4514_string()


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _with_negative_serial(made: Made, issuer: Made) -> bytes:
    """The certificate with serial 0x1234 re-encoded as -0x3333 and signed again by `issuer`."""
    tbs = made.cert.tbs_certificate_bytes
    old, new = bytes.fromhex("02021234"), bytes.fromhex("0202cccd")  # -0x3333, two's complement
    assert tbs.count(old) == 1
    tbs = tbs.replace(old, new)
    signature = issuer.key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    der = made.der
    # Certificate ::= SEQUENCE { tbs, signatureAlgorithm, signature BIT STRING }
    alg_start = 2 + (der[1] & 0x7F if der[1] & 0x80 else 0) + len(made.cert.tbs_certificate_bytes)
    alg_len = 2 + der[alg_start + 1]
    algorithm = der[alg_start : alg_start + alg_len]
    bits = b"\x03" + _der_len(len(signature) + 1) + b"\x00" + signature
    body = tbs + algorithm + bits
    return b"\x30" + _der_len(len(body)) + body


def test_negative_serial():
    root, inter, leaf = hierarchy()
    der = _with_negative_serial(leaf, inter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = x509.load_der_x509_certificate(der)
        assert parsed.serial_number == -0x3333
    spki = parsed.public_key().public_bytes(DER, SPKI)
    for record in (f"3 1 1 {hashlib.sha256(spki).hexdigest()}",
                   f"3 0 2 {hashlib.sha512(der).hexdigest()}"):  # fmt: skip
        assert M.match([record], [der, inter.der], HOST, NOW).ok
    result = M.match([tlsa(2, 1, 1, inter)], [der, inter.der], HOST, NOW)
    assert result.ok, result  # the re-signed certificate still chains to its issuer


def test_certificates_that_do_not_parse():
    root, inter, leaf = hierarchy()
    garbage = b"\x30\x03\x02\x01\x01"
    result = M.match([tlsa(3, 1, 1, leaf)], [garbage], HOST, NOW)
    assert (result.ok, result.reason) == (False, "certificate_unparsable")
    assert "certificate_unparsable" in result.notes and result.certs[0].error
    # A garbage extra certificate does not spoil a good chain.
    result = M.match([tlsa(2, 1, 1, inter)], [leaf.der, garbage, inter.der], HOST, NOW)
    assert result.ok and "certificate_unparsable" in result.notes
    # Truncated DER of the leaf: no key to match, no exception.
    for cut in (1, 10, len(leaf.der) // 2, len(leaf.der) - 1):
        assert not M.match([tlsa(3, 1, 1, leaf)], [leaf.der[:cut]], HOST, NOW).ok


def test_empty_chain():
    _, _, leaf = hierarchy()
    result = M.match([tlsa(3, 1, 1, leaf)], [], HOST, NOW)
    assert (result.ok, result.reason) == (False, "chain_empty")


def test_spki_walker_equals_cryptography():
    for kind in KINDS:
        made = make(f"walker-{kind}.example.net", kind)
        assert M.spki_der(made.der) == made.spki


def test_reasons_are_in_the_vocabulary():
    for code in ("tlsa_no_match", "dane_ta_name_mismatch", "dane_ta_expired",
                 "dane_ta_chain_invalid", "certificate_unparsable", "chain_empty",
                 "chain_out_of_order"):  # fmt: skip
        R.check([code])
