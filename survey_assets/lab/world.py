"""The lab's world: a pure function of (seed, scale, date).

This module says *what exists* on a date: TLDs, domains, DNS and mail providers, MX hosts,
nameservers, their keys, certificates, TLSA records and faults, and the story that unfolds over
the days after `LAB_EPOCH`. It holds no DNS messages and no sockets: `zones` turns it into zone
data, `dnsserver` and `smtpserver` serve it, and `truth` says what a correct survey must find.

Domains are not stored: a domain's spec is computed from (TLD, index) on demand, so the `bench`
scale (over a million names) costs no memory until a name is looked at.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import dns.exception
import dns.name

from survey_assets.lab.keys import digest, unit

LAB_EPOCH = dt.date(2026, 11, 1)
SCALES = {"tiny": 400, "demo": 4000, "bench": 1_000_000}
DEFAULT_SEED = 1


# --- the story: what happens on which day (days after LAB_EPOCH) -------------------------------
class Day:
    DANE_ON = 4  # provider "mailnova" publishes TLSA records: a noteworthy new DANE provider
    LIST_IMPORT = 5  # the passive-DNS name list is first imported: an import spike
    LIST_CADENCE = 7  # ... and then once a week
    GOOD_PREPUBLISH = 3  # "rollgood" publishes its next key's TLSA record ...
    GOOD_SWITCH = 6  # ... switches to the next key ...
    GOOD_RETIRE = 9  # ... and retires the old record
    BOTCH = 8  # "rollbad" replaces its key with no TLSA published for it
    BOTCH_FIX = 10  # ... and publishes the new key's TLSA two days later
    ISSUER_CHANGE = 10  # "eeta"'s CA switches its issuing intermediate under a 2 1 1 record
    JUMP = 7  # TLD lab-jump: a registrar signs most of its domains
    RESIGN_STOPS = 9  # a showcase domain stops re-signing: its signatures expire on this day
    FIXES_START = 2  # lab-secure's broken showcase domains are fixed one by one from this day
    DISABLE = 5  # a showcase domain removes its DS ...
    REENABLE = 8  # ... and adds it back


# --- addresses: every lab server has its own loopback address ------------------------------------
RESOLVER_ADDRESS = "127.53.0.53"
ROOT_SERVERS = {"a.root.nic.lab-net.": "127.53.0.1", "b.root.nic.lab-net.": "127.53.0.2"}
TLD_SERVERS = {"ns1.nic.lab-net.": "127.53.1.1", "ns2.nic.lab-net.": "127.53.1.2"}
BLACKHOLE_ADDRESS = (
    "127.53.3.1"  # receives and never answers: the self-hosted servers that time out
)
SELF_MX_POOL = [f"127.25.250.{i}" for i in range(1, 17)]
SELF_NS_V6 = "::1"


@dataclass(frozen=True)
class Tld:
    label: str
    share: float  # of the scale's domains
    signed_rate: float  # share of its domains that are signed
    jump_registrar: str | None = None  # this registrar signs all its domains here on Day.JUMP
    denial: str = "nsec"  # or "nsec3"
    nsec3_iterations: int = 0
    nsec3_salt: str = ""
    nsec3_optout: bool = False
    death_rate: float = 0.002  # per day
    birth_rate: float = 0.002  # per day, of the base count
    source: str = "czds"  # how the survey gets its names: czds | zonefile | axfr | list
    algorithm: int = 13

    @property
    def name(self) -> str:
        return f"{self.label}."


TLDS: tuple[Tld, ...] = (
    Tld("lab-vast", 0.38, 0.05, algorithm=8),
    Tld("lab-secure", 0.14, 0.95, algorithm=13),
    Tld("lab-jump", 0.12, 0.10, jump_registrar="signright", denial="nsec3", algorithm=13),
    Tld("lab-fade", 0.10, 0.30, death_rate=0.02, birth_rate=0.0, algorithm=8),
    Tld(
        "lab-optout",
        0.10,
        0.20,
        denial="nsec3",
        nsec3_iterations=5,
        nsec3_salt="c0ffee",
        nsec3_optout=True,
        algorithm=8,
        source="zonefile",
    ),
    Tld("lab-open", 0.10, 0.50, source="axfr", algorithm=15),
    Tld("lab-cc", 0.06, 0.30, source="list", algorithm=13),
)
INFRA_TLD = Tld("lab-net", 0.0, 1.0, algorithm=13)
ALL_TLDS = {t.label: t for t in (*TLDS, INFRA_TLD)}
ROOT_ALGORITHM = 8


# Registrars: who registered a domain (not visible in DNS; the truth carries it for analyses).
REGISTRARS = (("signright", 0.5), ("namebarn", 0.3), ("dotshop", 0.2))


# --- providers -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TlsaSpec:
    """A TLSA record by what it points at: `key` is a key label, `ca` an issuing CA's name."""

    usage: int
    selector: int
    mtype: int
    key: str | None = None
    ca: str | None = None
    malformed: bool = False


@dataclass(frozen=True)
class MxHost:
    """An MX host on a date: its addresses, what its SMTP server does, its key and TLSA records."""

    name: str  # absolute, with the trailing dot
    zone: str  # the zone that holds its A/AAAA/TLSA records
    addresses: tuple[str, ...]
    behaviour: dict[
        str, str
    ]  # address -> ok | no_starttls | starttls_454 | handshake_fail | tarpit | refused
    key: str  # label of the TLS key in use
    issuer: str  # issuing CA of its certificate
    cert_names: tuple[str, ...]  # the names in its certificate
    tlsa: tuple[TlsaSpec, ...]
    tlsa_fault: str | None = None  # rrsig_invalid | denial_bogus
    zone_signed: bool = True


@dataclass(frozen=True)
class Provider:
    label: str  # its zone is <label>.lab-net.
    kind: str  # mail | dns
    signed: bool = True
    algorithm: int = 13

    @property
    def zone(self) -> str:
        return f"{self.label}.lab-net."


MAIL_PROVIDERS: dict[str, Provider] = {
    p.label: p
    for p in (
        Provider("bigdane", "mail"),
        Provider("mailnova", "mail", algorithm=15),
        Provider("rollgood", "mail"),
        Provider("rollbad", "mail", algorithm=8),
        Provider("eeta", "mail"),
        Provider("plainmail", "mail", signed=False),
        Provider("cheapmail", "mail"),
        Provider("faultymail", "mail"),
    )
}

# Share of ordinary domains hosted by each mail provider; the rest host their own mail or have none.
MAIL_SHARES = (
    ("bigdane", 0.22),
    ("mailnova", 0.08),
    ("rollgood", 0.04),
    ("rollbad", 0.04),
    ("eeta", 0.04),
    ("plainmail", 0.30),
    ("cheapmail", 0.13),
    ("self", 0.06),
    ("self_dane", 0.03),
    ("none", 0.06),
)

# DNS providers: name -> {nameserver label: fault or None}. Each server has its own address.
DNS_PROVIDERS: dict[str, dict[str, str | None]] = {
    "dnshost": {"ns1": None, "ns2": None},
    "quirkydns": {"ns1": None, "ns2": "stale"},
    "oldbind": {"ns1": "no_edns", "ns2": None},
    "strictfw": {"ns1": "notimp_tlsa", "ns2": "refused_unknown"},
    "tinyudp": {"ns1": "tcp_only", "ns2": "tc_no_tcp"},
    "nodo": {"ns1": "do_stripped", "ns2": None},
    "slowdns": {"ns1": "timeout", "ns2": None},
    "entbug": {"ns1": "ent_nxdomain", "ns2": None},
}
DNS_SHARES = (
    ("dnshost", 0.72),
    ("quirkydns", 0.04),
    ("oldbind", 0.04),
    ("strictfw", 0.04),
    ("tinyudp", 0.04),
    ("nodo", 0.04),
    ("slowdns", 0.04),
    ("entbug", 0.04),
)
NAMESERVER_REASONS = {
    "stale": ["ns_inconsistent"],
    "no_edns": ["no_edns"],
    "notimp_tlsa": ["notimp", "unknown_type_notimp"],
    "refused_unknown": ["unknown_type_refused"],
    "tcp_only": [],  # truncates every UDP answer but serves TCP: healthy, if slow
    "tc_no_tcp": ["tcp_failed"],
    "do_stripped": ["do_bit_stripped"],
    "timeout": ["timeout"],
    "ent_nxdomain": ["ent_nxdomain"],
}

# MX hosts of "faultymail": one fault each (host label -> spec fields).
FAULTY_HOSTS: dict[str, dict] = {
    "notls": {"behaviour": "no_starttls"},
    "tls454": {"behaviour": "starttls_454"},
    "badhs": {"behaviour": "handshake_fail"},
    "tarpit": {"behaviour": "tarpit"},
    "mismatch": {"tlsa": "other_key"},
    "wrongta": {"tlsa": "ee_plus_wrong_ca"},
    "taname": {"tlsa": "ta_only", "cert_names": ("mail.elsewhere.lab-net.",)},
    "single": {"tlsa": "single"},
    "dupkey": {"tlsa": "dup"},
    "unusable": {"tlsa": "pkix_only"},
    "malformed": {"tlsa": "malformed"},
    "tlsabogus": {"tlsa_fault": "rrsig_invalid"},
    "denialbogus": {"tlsa": "none", "tlsa_fault": "denial_bogus"},
    "halfbad": {"behaviour_second": "no_starttls"},  # second address fails
    "down": {"behaviour": "refused"},  # paired with a healthy primary: does not count
}
ISSUER_A, ISSUER_B, OTHER_CA = "Lab Issuing CA R1", "Lab Issuing CA R2", "Lab Other CA X9"

# Faults of signed showcase domains (DNS level), in the order they are assigned.
DOMAIN_FAULTS = (
    "ds_mismatch",
    "dnskey_not_signed_by_ds_key",
    "rrsig_expired",
    "rrsig_not_yet_valid",
    "rrsig_invalid",
    "rrsig_missing",
    "signer_outside_zone",
    "revoked_key",
    "unsupported_algorithm",
    "unsupported_digest",
    "mx_denial_bogus",
    "lame",
    "ns_timeout",
    "expires_later",  # stops re-signing: healthy until Day.RESIGN_STOPS, then rrsig_expired
    "disable_reenable",  # unsigned from Day.DISABLE until Day.REENABLE
    "nsec3_iterations_too_high",  # NSEC3 with more iterations than validators hash: no MX, insecure
)
# Above the 150 iterations Unbound hashes (RFC 9276 §3.2): validators call the zone's denials
# insecure without checking them.
NSEC3_HIGH_ITERATIONS = 200
# Which of those get fixed over time (the lab-secure TLD improves its DNSSEC health).
FIXABLE = ("ds_mismatch", "rrsig_invalid", "rrsig_missing", "signer_outside_zone")

# Names in the name list that real lists contain: hostile but valid DNS labels (all in lab-cc).
HOSTILE_LABELS: tuple[bytes, ...] = (
    b"a.b",  # an escaped dot: a\.b
    b"nul\x00byte",
    b'quote"x',
    b"<script>alert(1)</script>",
    b"back\\slash",
    b"x" * 63,  # a maximum-length label
    b"xn--bcher-kva",  # a valid IDN A-label (bucher with umlaut)
    b"xn--zz-",  # invalid punycode, a valid DNS label
)
# Lines of the name list that are not valid names at all: never candidates.
INVALID_LIST_LINES = ("empty..lab-cc", "y" * 64 + ".lab-cc", ("z" * 62 + ".") * 4 + "lab-cc")


@dataclass(frozen=True)
class Domain:
    """A second-level domain on a date."""

    name: str  # presentation form, absolute
    tld: str  # label
    index: int
    signed: bool  # has a DS in its parent on this date (with the fault's effect)
    algorithm: int
    mail: str  # provider label, "self", "self_dane" or "none"
    dns: str  # DNS provider label or "self"
    fault: str | None
    wildcard: bool
    denial: str  # nsec | nsec3
    registrar: str = ""
    nsec3_iterations: int = 0
    nsec3_salt: str = ""

    @property
    def labels(self) -> tuple[bytes, ...]:
        return (self.label_bytes, self.tld.encode(), b"")

    @property
    def label_bytes(self) -> bytes:
        return _label_of(self.tld, self.index)


_SYLLABLES = [
    "ka",
    "ri",
    "mo",
    "ne",
    "la",
    "tu",
    "vi",
    "so",
    "be",
    "da",
    "fe",
    "gi",
    "hu",
    "jo",
    "ku",
    "le",
    "mi",
    "na",
    "po",
    "qu",
    "ra",
    "se",
    "ti",
    "vo",
    "wa",
    "xe",
    "yo",
    "zu",
    "bri",
    "cla",
    "dro",
    "fla",
    "gro",
    "kri",
    "plo",
    "stu",
    "tra",
    "zen",
]


def _label_of(tld: str, index: int) -> bytes:
    if tld == "lab-cc" and index < len(HOSTILE_LABELS):
        return HOSTILE_LABELS[index]
    h = digest(0, "name", tld, index, size=3)
    word = "".join(_SYLLABLES[b % len(_SYLLABLES)] for b in h[: 2 + h[2] % 2])
    return f"{word}{index}".encode()


def index_of(tld: str, label: bytes) -> int | None:
    """The index of a domain label, or None when the label is not one of the lab's."""
    if tld == "lab-cc" and label in HOSTILE_LABELS:
        return HOSTILE_LABELS.index(label)
    digits = len(label) - len(label.rstrip(b"0123456789"))
    if not digits or (digits > 1 and label[-digits] == ord("0")):
        return None
    index = int(label[-digits:])
    return index if _label_of(tld, index) == label.lower() else None


def date_of(day: int) -> dt.date:
    return LAB_EPOCH + dt.timedelta(days=day)


def day_of(date: dt.date) -> int:
    return (date - LAB_EPOCH).days


def parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"bad date {text!r}: expected YYYY-MM-DD") from None


@dataclass
class World:
    """Everything that exists in the lab on one date."""

    seed: int
    scale: str
    date: dt.date
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ValueError(f"unknown scale {self.scale!r}: choose one of {', '.join(SCALES)}")
        if not isinstance(self.date, dt.date):
            raise ValueError(f"bad date {self.date!r}")

    @property
    def day(self) -> int:
        return day_of(self.date)

    def __hash__(self) -> int:
        return hash((self.seed, self.scale, self.date))

    # --- domains ---------------------------------------------------------------------------------
    def base_count(self, tld: Tld) -> int:
        return max(40, round(SCALES[self.scale] * tld.share))

    def index_range(self, tld: Tld) -> range:
        """Every index that exists on some day up to this one (births come after the base)."""
        base = self.base_count(tld)
        return range(base + self.born_per_day(tld) * max(self.day, 0))

    def born_per_day(self, tld: Tld) -> int:
        return round(self.base_count(tld) * tld.birth_rate)

    def showcase_count(self, tld: Tld) -> int:
        if tld.label in ("lab-secure", "lab-open"):
            return 24
        return len(HOSTILE_LABELS) if tld.label == "lab-cc" else 4

    def born_day(self, tld: Tld, index: int) -> int | None:
        base = self.base_count(tld)
        if index < base:
            return None  # there since before the epoch
        return 1 + (index - base) // max(1, self.born_per_day(tld))

    def died_day(self, tld: Tld, index: int) -> int | None:
        if index < self.showcase_count(tld) or tld.death_rate == 0:
            return None
        u = unit(self.seed, "death", tld.label, index)
        born = self.born_day(tld, index) or 0
        return born + 1 + int(-math.log(1.0 - u) / tld.death_rate)

    def alive(self, tld: Tld, index: int, day: int | None = None) -> bool:
        day = self.day if day is None else day
        born, died = self.born_day(tld, index), self.died_day(tld, index)
        return (born is None or born <= day) and (died is None or day < died)

    def domain_names(self, tld: Tld) -> Iterator[tuple[int, bytes]]:
        """(index, label) of every domain of the TLD alive on this date, in index order."""
        for i in self.index_range(tld):
            if self.alive(tld, i):
                yield i, _label_of(tld.label, i)

    def domain(self, tld_label: str, index: int) -> Domain:
        key = ("domain", tld_label, index)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._make_domain(ALL_TLDS[tld_label], index)
        return found

    def lookup_domain(self, labels: tuple[bytes, ...]) -> Domain | None:
        """The domain whose zone is named by (label, tld): None when it does not exist today."""
        if len(labels) != 3 or labels[2] != b"":
            return None
        tld = ALL_TLDS.get(labels[1].decode("ascii", "replace").lower())
        if tld is None or tld is INFRA_TLD:
            return None
        index = index_of(tld.label, labels[0].lower())
        if index is None or index not in self.index_range(tld) or not self.alive(tld, index):
            return None
        return self.domain(tld.label, index)

    def _make_domain(self, tld: Tld, i: int) -> Domain:
        seed, day = self.seed, self.day
        registrar = _pick(REGISTRARS, unit(seed, "registrar", tld.label, i))
        signed = unit(seed, "signed", tld.label, i) < tld.signed_rate
        if tld.jump_registrar == registrar and day >= Day.JUMP:
            signed = True
        fault = None
        showcase = i < self.showcase_count(tld)
        mail, dns_provider = self._hosting(tld, i)
        if tld.label == "lab-secure" and showcase and i < len(DOMAIN_FAULTS):
            signed, fault = True, DOMAIN_FAULTS[i]
            if fault in FIXABLE and day >= Day.FIXES_START + FIXABLE.index(fault):
                fault = None
        elif tld.label == "lab-secure" and not showcase and i % 500 == 250:
            signed, fault = True, DOMAIN_FAULTS[(i // 500) % len(DOMAIN_FAULTS)]
        elif tld.label in ("lab-open", "lab-secure") and showcase:
            signed = True  # the faulty mail hosts' and the self-DANE domains' customers
        if fault == "expires_later" and day < Day.RESIGN_STOPS:
            fault = None
        elif fault == "expires_later":
            fault = "rrsig_expired"
        if fault == "disable_reenable":
            fault = None
            signed = not (Day.DISABLE <= day < Day.REENABLE)
        if tld.label == "lab-cc" and showcase:
            signed = False
        if fault in ("mx_denial_bogus", "nsec3_iterations_too_high"):
            mail = "none"  # the fault shows in a negative answer: the MX query's NODATA
        elif fault and mail in ("self", "self_dane"):
            mail = "bigdane"  # a self-hosted mail host would inherit the zone's fault
        a = unit(seed, "alg", tld.label, i)
        algorithm = 13 if a < 0.6 else 8 if a < 0.85 else 15 if a < 0.95 else 14
        w = unit(seed, "denial", tld.label, i)
        denial, iterations, salt = "nsec", 0, ""
        if w < 0.25:
            denial = "nsec3"
        if 0.20 < w < 0.25:
            iterations, salt = 10, "ab12"
        if fault == "nsec3_iterations_too_high":
            denial, iterations, salt = "nsec3", NSEC3_HIGH_ITERATIONS, "ab12"
        return Domain(
            name=dns.name.Name((_label_of(tld.label, i), tld.label.encode(), b"")).to_text(),
            tld=tld.label,
            index=i,
            signed=signed,
            algorithm=algorithm,
            mail=mail,
            dns=dns_provider,
            fault=fault if signed else None,
            wildcard=unit(seed, "wildcard", tld.label, i) < 0.08,
            denial=denial,
            registrar=registrar,
            nsec3_iterations=iterations,
            nsec3_salt=salt,
        )

    def _hosting(self, tld: Tld, i: int) -> tuple[str, str]:
        """(mail, dns) hosting of a domain; showcase domains are placed by hand."""
        if tld.label == "lab-open" and i < self.showcase_count(tld):
            hosts = list(FAULTY_HOSTS)
            return ("faultymail", "dnshost") if i < len(hosts) else ("self_dane", "entbug")
        if tld.label == "lab-secure" and i < self.showcase_count(tld):
            fault = DOMAIN_FAULTS[i] if i < len(DOMAIN_FAULTS) else None
            if fault == "lame":
                return "bigdane", "dnshost"  # delegated to dnshost, which does not serve it
            if fault == "ns_timeout":
                return (
                    "bigdane",
                    "self",
                )  # self-hosted servers in the lab are the ones that time out
            providers = [p for p in MAIL_PROVIDERS if p != "faultymail"]
            return providers[i % len(providers)], "dnshost"
        mail = _pick(MAIL_SHARES, unit(self.seed, "mail", tld.label, i))
        dns = _pick(DNS_SHARES, unit(self.seed, "dns", tld.label, i))
        if mail == "self_dane":
            dns = "entbug" if dns == "dnshost" else dns
        return mail, dns

    def faulty_host_of(self, domain: Domain) -> list[str]:
        """The faultymail host labels a showcase domain uses (primary first)."""
        hosts = list(FAULTY_HOSTS)
        label = hosts[domain.index % len(hosts)]
        if label == "down":
            return ["down", "single"]  # same preference: the one that refuses does not count
        return [label]

    # --- mail ------------------------------------------------------------------------------------
    def mx_records(self, domain: Domain) -> list[tuple[int, str]]:
        """(preference, host) of a domain's MX records on this date."""
        if domain.mail == "none":
            return []
        if domain.mail in ("self", "self_dane"):
            return [(10, f"mail.{domain.name}")]
        if domain.mail == "faultymail":
            return [(10, f"{h}.faultymail.lab-net.") for h in self.faulty_host_of(domain)]
        return [(10, f"mx1.{domain.mail}.lab-net."), (20, f"mx2.{domain.mail}.lab-net.")]

    def provider_hosts(self, provider: str) -> list[MxHost]:
        key = ("hosts", provider)
        if key not in self._cache:
            self._cache[key] = self._make_provider_hosts(provider)
        return self._cache[key]

    def mx_hosts(self) -> list[MxHost]:
        """Every MX host of the providers (self-hosted mail hosts come from `self_host`)."""
        return [h for p in MAIL_PROVIDERS for h in self.provider_hosts(p)]

    def _make_provider_hosts(self, provider: str) -> list[MxHost]:
        p = MAIL_PROVIDERS[provider]
        p_index = list(MAIL_PROVIDERS).index(provider)
        day = self.day
        hosts: list[MxHost] = []
        labels = list(FAULTY_HOSTS) if provider == "faultymail" else ["mx1", "mx2"]
        for h_index, label in enumerate(labels):
            name = f"{label}.{p.zone}"
            v4 = f"127.25.{p_index + 1}.{h_index + 1}"
            addresses: tuple[str, ...] = (v4,)
            if provider == "bigdane":
                addresses = (v4, "::1")
            if label == "halfbad":
                addresses = (v4, f"127.25.{p_index + 1}.{h_index + 101}")
            behaviour = {a: "ok" for a in addresses}
            key, issuer, names = f"{name}#0", ISSUER_A, (name,)
            cur = TlsaSpec(3, 1, 1, key=key)
            tlsa: tuple[TlsaSpec, ...] = (cur, TlsaSpec(3, 1, 1, key=f"{name}#1"))
            fault = None
            if provider == "bigdane" and label == "mx2":
                tlsa = (TlsaSpec(3, 0, 1, key=key), TlsaSpec(3, 1, 1, key=f"{name}#1"))
            elif provider == "mailnova":
                tlsa = (
                    (TlsaSpec(3, 1, 2, key=key), TlsaSpec(3, 1, 2, key=f"{name}#1"))
                    if day >= Day.DANE_ON
                    else ()
                )
            elif provider == "rollgood":
                if day >= Day.GOOD_SWITCH:
                    key = f"{name}#1"
                nxt = TlsaSpec(3, 1, 1, key=f"{name}#1")
                if day < Day.GOOD_PREPUBLISH:
                    tlsa = (cur,)
                elif day < Day.GOOD_RETIRE:
                    tlsa = (cur, nxt)
                else:
                    tlsa = (nxt,)
            elif provider == "rollbad":
                if day >= Day.BOTCH:
                    key = f"{name}#1"
                tlsa = (cur,) if day < Day.BOTCH_FIX else (TlsaSpec(3, 1, 1, key=f"{name}#1"),)
            elif provider == "eeta":
                tlsa = (cur, TlsaSpec(2, 1, 1, ca=ISSUER_A))
                if day >= Day.ISSUER_CHANGE:
                    issuer = ISSUER_B
            elif provider in ("plainmail", "cheapmail"):
                tlsa = ()
            elif provider == "faultymail":
                spec = FAULTY_HOSTS[label]
                behaviour[v4] = spec.get("behaviour", "ok")
                if "behaviour_second" in spec:
                    behaviour[addresses[1]] = spec["behaviour_second"]
                names = spec.get("cert_names", names)
                fault = spec.get("tlsa_fault")
                tlsa = {
                    None: (cur, TlsaSpec(3, 1, 1, key=f"{name}#1")),
                    "other_key": (TlsaSpec(3, 1, 1, key=f"{name}#other"),),
                    "ee_plus_wrong_ca": (cur, TlsaSpec(2, 1, 1, ca=OTHER_CA)),
                    "ta_only": (TlsaSpec(2, 1, 1, ca=ISSUER_A),),
                    "single": (cur,),
                    "dup": (cur, TlsaSpec(3, 1, 2, key=key)),
                    "pkix_only": (TlsaSpec(1, 1, 1, key=key),),
                    "malformed": (TlsaSpec(3, 1, 1, key=key, malformed=True),),
                    "none": (),
                }[spec.get("tlsa")]
            hosts.append(
                MxHost(
                    name=name,
                    zone=p.zone,
                    addresses=addresses,
                    behaviour=behaviour,
                    key=key,
                    issuer=issuer,
                    cert_names=names,
                    tlsa=tlsa,
                    tlsa_fault=fault,
                    zone_signed=p.signed,
                )
            )
        return hosts

    def self_host(self, domain: Domain) -> MxHost:
        """The mail host of a domain that runs its own (`mail.<domain>`)."""
        name = f"mail.{domain.name}"
        slot = int.from_bytes(digest(self.seed, "selfmx", domain.name, size=2), "big")
        address = SELF_MX_POOL[slot % len(SELF_MX_POOL)]
        key = f"{name}#0"
        tlsa = (TlsaSpec(3, 1, 1, key=key),) if domain.mail == "self_dane" else ()
        return MxHost(
            name=name,
            zone=domain.name,
            addresses=(address,),
            behaviour={address: "ok"},
            key=key,
            issuer=ISSUER_A,
            cert_names=(name,),
            tlsa=tlsa,
            zone_signed=domain.signed,
        )

    def host(self, name: str) -> MxHost | None:
        """An MX host by name: a provider's or a self-hosted one."""
        for h in self.mx_hosts():
            if h.name == name:
                return h
        if name.startswith("mail."):
            try:
                labels = dns.name.from_text(name[5:]).labels
            except dns.exception.DNSException:
                return None
            d = self.lookup_domain(labels)
            if d is not None and d.mail in ("self", "self_dane"):
                return self.self_host(d)
        return None

    # --- nameservers -----------------------------------------------------------------------------
    def nameservers(self) -> dict[str, tuple[str, str | None]]:
        """host name -> (address, fault) of every DNS provider's server."""
        result = {}
        for p_index, (provider, servers) in enumerate(DNS_PROVIDERS.items()):
            for s_index, (label, fault) in enumerate(servers.items()):
                address = f"127.53.2.{p_index * 4 + s_index + 1}"
                result[f"{label}.{provider}.lab-net."] = (address, fault)
        return result

    def ns_records(self, domain: Domain) -> list[str]:
        if domain.dns == "self":
            return [f"ns1.{domain.name}", f"ns2.{domain.name}"]
        if domain.fault == "lame":
            return ["ns1.dnshost.lab-net.", "ns2.dnshost.lab-net."]
        return [f"{label}.{domain.dns}.lab-net." for label in DNS_PROVIDERS[domain.dns]]


def _pick(shares: tuple[tuple[str, float], ...], u: float) -> str:
    total = 0.0
    for name, share in shares:
        total += share
        if u < total:
            return name
    return shares[-1][0]


@functools.lru_cache(maxsize=64)
def world(seed: int, scale: str, date: dt.date) -> World:
    """The (cached) world of a date."""
    return World(seed, scale, date)
