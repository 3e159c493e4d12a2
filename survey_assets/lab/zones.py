"""Zone data of the lab: what each zone holds on a date, before any signing.

A `Zone` answers `node(name)` with its RRsets at that name (authoritative data, delegation NS and
DS, glue) and lists its names in canonical order. Small zones are built whole; a TLD's
delegations are computed on demand from the world, so a million-name TLD costs nothing until
someone asks for a name in it.
"""

from __future__ import annotations

import bisect
import functools
from dataclasses import dataclass, field

import dns.dnssec
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype as T

from survey_assets.lab import keys as K
from survey_assets.lab.world import (
    ALL_TLDS,
    BLACKHOLE_ADDRESS,
    DNS_PROVIDERS,
    INFRA_TLD,
    MAIL_PROVIDERS,
    ROOT_ALGORITHM,
    ROOT_SERVERS,
    TLD_SERVERS,
    TLDS,
    Domain,
    MxHost,
    Tld,
    World,
)

IN = dns.rdataclass.IN
TTL = 3600
ROOT = dns.name.root
Node = dict[int, dns.rdataset.Rdataset]
PRIVATE_ALGORITHM = 253  # PRIVATEDNS: no validator supports it, so a zone using only it is insecure
UNKNOWN_DIGEST = 250  # an unassigned DS digest type


@dataclass(frozen=True)
class ZoneKey:
    dnskey: dns.rdata.Rdata
    private: K.PrivateKey | None  # None for the private algorithm: signatures are opaque bytes
    ksk: bool

    @property
    def tag(self) -> int:
        return dns.dnssec.key_id(self.dnskey)


@dataclass
class Zone:
    """The data of one zone on a date; signing lives in `signer`."""

    origin: dns.name.Name
    serial: int
    signed: bool = False
    algorithm: int = 13
    keys: list[ZoneKey] = field(default_factory=list)
    denial: str = "nsec"
    nsec3_iterations: int = 0
    nsec3_salt: str = ""
    nsec3_optout: bool = False
    fault: str | None = None
    # Names under which negative answers carry a broken proof (a bogus denial of existence).
    broken_denial: tuple[dns.name.Name, ...] = ()
    broken_tlsa: tuple[dns.name.Name, ...] = ()
    nodes: dict[dns.name.Name, Node] = field(default_factory=dict)

    # --- content ---------------------------------------------------------------------------------
    def add(self, owner: dns.name.Name | str, rdtype: int, *texts: str, ttl: int = TTL) -> None:
        if isinstance(owner, str):
            owner = dns.name.from_text(owner, self.origin)
        node = self.nodes.setdefault(owner, {})
        rds = node.get(rdtype)
        if rds is None:
            rds = node[rdtype] = dns.rdataset.Rdataset(IN, rdtype, ttl=ttl)
        for text in texts:
            rds.add(dns.rdata.from_text(IN, rdtype, text, origin=self.origin, relativize=False))

    def add_rdata(self, owner: dns.name.Name, rdata: dns.rdata.Rdata, ttl: int = TTL) -> None:
        node = self.nodes.setdefault(owner, {})
        rds = node.setdefault(rdata.rdtype, dns.rdataset.Rdataset(IN, rdata.rdtype, ttl=ttl))
        rds.add(rdata)

    def node(self, name: dns.name.Name) -> Node | None:
        return self.nodes.get(name)

    def is_cut(self, name: dns.name.Name) -> bool:
        """A delegation point: NS at a name other than the apex."""
        if name == self.origin:
            return False
        node = self.node(name)
        return node is not None and T.NS in node

    @functools.cached_property
    def _sorted(self) -> list[dns.name.Name]:
        return sorted(self.nodes)

    def names(self) -> list[dns.name.Name]:
        """Owner names in canonical order, including glue (callers skip what they must)."""
        return self._sorted

    def below(self, name: dns.name.Name) -> bool:
        """True when some name strictly below `name` exists (so `name` is at least an ENT)."""
        names = self.names()
        i = bisect.bisect_right(names, name)
        return i < len(names) and names[i].is_subdomain(name) and names[i] != name

    def occluded(self, name: dns.name.Name) -> bool:
        """True when `name` is below a delegation point (glue), so not authoritative data."""
        n = name.parent() if name != self.origin else name
        while n != self.origin and n.is_subdomain(self.origin):
            if self.is_cut(n):
                return True
            n = n.parent()
        return False


class TldZone(Zone):
    """A TLD: apex data built whole, delegations made from the world when asked for."""

    def __init__(self, world: World, tld: Tld, **kw) -> None:
        super().__init__(**kw)
        self.world = world
        self.tld = tld
        self._children: dict[bytes, Node | None] = {}

    def child_domain(self, label: bytes) -> Domain | None:
        return self.world.lookup_domain((label, self.tld.label.encode(), b""))

    def node(self, name: dns.name.Name) -> Node | None:
        found = self.nodes.get(name)
        if found is not None or len(name) <= 2:
            return found
        rel = name.relativize(self.origin).labels
        label = rel[-1].lower()
        if label not in self._children:
            self._children[label] = self._make_child(label)
        child = self._children[label]
        if child is None:
            return None
        if len(rel) == 1:
            return child
        return self._glue(name)

    def _make_child(self, label: bytes) -> Node | None:
        if self.tld is INFRA_TLD:
            return None
        domain = self.child_domain(label)
        if domain is None:
            return None
        return delegation_node(self.world, domain)

    def _glue(self, name: dns.name.Name) -> Node | None:
        parent = name.parent()
        domain = self.child_domain(parent.relativize(self.origin).labels[-1].lower())
        if domain is None or domain.dns != "self" or name.labels[0] not in (b"ns1", b"ns2"):
            return None
        node: Node = {}
        rds = node[T.A] = dns.rdataset.Rdataset(IN, T.A, ttl=TTL)
        rds.add(dns.rdata.from_text(IN, T.A, BLACKHOLE_ADDRESS))
        return node

    @functools.cached_property
    def _sorted(self) -> list[dns.name.Name]:
        names = list(self.nodes)
        if self.tld is not INFRA_TLD:
            suffix = self.origin
            for _, label in self.world.domain_names(self.tld):
                names.append(dns.name.Name((label, *suffix.labels)))
        return sorted(names)

    def below(self, name: dns.name.Name) -> bool:
        if name == self.origin:
            return True
        return super().below(name)

    def is_cut(self, name: dns.name.Name) -> bool:
        if len(name) == len(self.origin) + 1:
            node = self.node(name)
            return node is not None and T.NS in node
        return False

    def occluded(self, name: dns.name.Name) -> bool:
        return len(name) > len(self.origin) + 1


# --- keys ------------------------------------------------------------------------------------------
def _private_key(seed: int, label: str, algorithm: int, ksk: bool) -> K.PrivateKey:
    if algorithm == 8:  # 2048-bit KSKs, 1024-bit ZSKs, as many RSA zones still run
        return K.rsa_key(seed, label, 2048 if ksk else 1024)
    if algorithm == 13:
        return K.ec_key(seed, label, "p256")
    if algorithm == 14:
        return K.ec_key(seed, label, "p384")
    if algorithm == 15:
        return K.ed25519_key(seed, label)
    raise ValueError(f"the lab does not sign with algorithm {algorithm}")


@functools.lru_cache(maxsize=65536)
def zone_keys(seed: int, origin: str, algorithm: int, split: bool, revoked: bool) -> list[ZoneKey]:
    """A zone's KSK (and ZSK when `split`), deterministic from the seed and zone name."""
    result = []
    roles = [True, False] if split else [True]
    for ksk in roles:
        flags = 257 if ksk else 256
        if ksk and revoked:
            flags |= 0x80
        label = f"{origin}|{'ksk' if ksk else 'zsk'}|{algorithm}"
        if algorithm == PRIVATE_ALGORITHM:
            blob = dns.name.from_text("keys.lab-net.").to_wire() + K.digest(seed, label)
            text = f"{flags} 3 {algorithm} {_b64(blob)}"
            dnskey = dns.rdata.from_text(IN, T.DNSKEY, text)
            result.append(ZoneKey(dnskey, None, ksk))
            continue
        private = _private_key(seed, label, algorithm, ksk)
        dnskey = dns.dnssec.make_dnskey(private.public_key(), algorithm, flags)
        result.append(ZoneKey(dnskey, private, ksk))
    return result


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def ds_rdatas(zone_name: str, keys: list[ZoneKey], digests: tuple[int, ...], fault: str | None):
    """The DS records the parent publishes for a child zone, with the child's DS-level fault."""
    name = dns.name.from_text(zone_name)
    out = []
    for key in keys:
        if not key.ksk:
            continue
        for digest_type in digests:
            if fault == "unsupported_digest":
                base = dns.dnssec.make_ds(name, key.dnskey, 2)
                out.append(_ds(base.key_tag, base.algorithm, UNKNOWN_DIGEST, base.digest))
                continue
            dnskey = key.dnskey
            if fault == "revoked_key":
                # The operator revoked the KSK; the parent still points at the key as it was.
                dnskey = dnskey.replace(flags=dnskey.flags & ~0x80)
            ds = dns.dnssec.make_ds(name, dnskey, digest_type, policy=dns.dnssec.allow_all_policy)
            if fault == "ds_mismatch":
                ds = _ds(
                    ds.key_tag, ds.algorithm, ds.digest_type, bytes(b ^ 0x5A for b in ds.digest)
                )
            out.append(ds)
    return out


def _ds(tag: int, algorithm: int, digest_type: int, digest: bytes) -> dns.rdata.Rdata:
    return dns.rdata.from_text(IN, T.DS, f"{tag} {algorithm} {digest_type} {digest.hex()}")


# --- zone builders -------------------------------------------------------------------------------
def serial_of(world: World) -> int:
    return int(world.date.strftime("%Y%m%d")) * 100 + 1


def _soa(zone: Zone, mname: str, rname: str) -> None:
    zone.add(zone.origin, T.SOA, f"{mname} {rname} {zone.serial} 7200 3600 1209600 3600")


def domain_keys(world: World, domain: Domain) -> list[ZoneKey]:
    algorithm = PRIVATE_ALGORITHM if domain.fault == "unsupported_algorithm" else domain.algorithm
    split = K.unit(world.seed, "split", domain.name) < 0.5 or domain.fault in (
        "dnskey_not_signed_by_ds_key",
        "revoked_key",
    )
    return zone_keys(world.seed, domain.name, algorithm, split, domain.fault == "revoked_key")


def domain_digests(world: World, domain: Domain) -> tuple[int, ...]:
    u = K.unit(world.seed, "digest", domain.name)
    return (2,) if u < 0.8 else (4,) if u < 0.9 else (1, 2)


def delegation_node(world: World, domain: Domain) -> Node:
    """NS (and DS) for a domain, as its parent TLD holds them."""
    node: Node = {}
    ns = node[T.NS] = dns.rdataset.Rdataset(IN, T.NS, ttl=TTL)
    for host in world.ns_records(domain):
        ns.add(dns.rdata.from_text(IN, T.NS, host))
    if domain.signed:
        ds = node[T.DS] = dns.rdataset.Rdataset(IN, T.DS, ttl=TTL)
        for rdata in ds_rdatas(
            domain.name, domain_keys(world, domain), domain_digests(world, domain), domain.fault
        ):
            ds.add(rdata)
    return node


def root_zone(world: World) -> Zone:
    zone = Zone(ROOT, serial_of(world), signed=True, algorithm=ROOT_ALGORITHM)
    zone.keys = zone_keys(world.seed, ".", ROOT_ALGORITHM, True, False)
    _soa(zone, "a.root.nic.lab-net.", "hostmaster.nic.lab-net.")
    zone.add(ROOT, T.NS, *ROOT_SERVERS)
    for tld in (*TLDS, INFRA_TLD):
        origin = dns.name.from_text(tld.name)
        zone.add(origin, T.NS, *TLD_SERVERS)
        keys = zone_keys(world.seed, tld.name, tld.algorithm, True, False)
        for rdata in ds_rdatas(tld.name, keys, (2,), None):
            zone.add_rdata(origin, rdata)
    for host, address in {**ROOT_SERVERS, **TLD_SERVERS}.items():
        zone.add(dns.name.from_text(host), T.A, address)
    return zone


def tld_zone(world: World, tld: Tld) -> TldZone:
    origin = dns.name.from_text(tld.name)
    zone = TldZone(
        world,
        tld,
        origin=origin,
        serial=serial_of(world),
        signed=True,
        algorithm=tld.algorithm,
        denial=tld.denial,
        nsec3_iterations=tld.nsec3_iterations,
        nsec3_salt=tld.nsec3_salt,
        nsec3_optout=tld.nsec3_optout,
    )
    zone.keys = zone_keys(world.seed, tld.name, tld.algorithm, True, False)
    _soa(zone, "ns1.nic.lab-net.", f"hostmaster.nic.{tld.name}")
    zone.add(origin, T.NS, *TLD_SERVERS)
    if tld is INFRA_TLD:
        for label in ("nic", *MAIL_PROVIDERS, *DNS_PROVIDERS):
            child = f"{label}.{tld.name}"
            sub = provider_zone(world, child)
            zone.add(child, T.NS, *TLD_SERVERS) if label == "nic" else zone.add(
                child, T.NS, "ns1.dnshost.lab-net.", "ns2.dnshost.lab-net."
            )
            if sub.signed:
                for rdata in ds_rdatas(child, sub.keys, (2,), None):
                    zone.add_rdata(dns.name.from_text(child), rdata)
        for host, address in TLD_SERVERS.items():
            zone.add(dns.name.from_text(host), T.A, address)
        for host, (address, _) in world.nameservers().items():
            if host.startswith(("ns1.dnshost.", "ns2.dnshost.")):
                zone.add(dns.name.from_text(host), T.A, address)
    return zone


def provider_zone(world: World, origin_text: str) -> Zone:
    """nic.lab-net. (the lab's own servers) or a mail or DNS provider's zone."""
    label = origin_text.split(".")[0]
    origin = dns.name.from_text(origin_text)
    mail = MAIL_PROVIDERS.get(label)
    signed = mail.signed if mail else True
    algorithm = mail.algorithm if mail else 13
    zone = Zone(origin, serial_of(world), signed=signed, algorithm=algorithm)
    if signed:
        zone.keys = zone_keys(world.seed, origin_text, algorithm, False, False)
    _soa(zone, "ns1.dnshost.lab-net.", f"hostmaster.{origin_text}")
    servers = TLD_SERVERS if label == "nic" else ("ns1.dnshost.lab-net.", "ns2.dnshost.lab-net.")
    zone.add(origin, T.NS, *servers)
    if label == "nic":
        for host, address in {**ROOT_SERVERS, **TLD_SERVERS}.items():
            zone.add(dns.name.from_text(host), T.A, address)
    elif mail:
        hosts = world.provider_hosts(label)
        zone.add(origin, T.MX, f"10 {hosts[0].name}")
        for host in hosts:
            add_mx_host(world, zone, host)
    else:
        zone.add(origin, T.MX, "10 mx1.cheapmail.lab-net.")
        for host, (address, _) in world.nameservers().items():
            if host.endswith(f".{origin_text}"):
                zone.add(dns.name.from_text(host), T.A, address)
    zone.add(origin, T.TXT, '"lab provider zone: synthetic, see the survey README"')
    return zone


def add_mx_host(world: World, zone: Zone, host: MxHost) -> None:
    from survey_assets.lab import tlsa as tlsa_rdata

    name = dns.name.from_text(host.name)
    for address in host.addresses:
        zone.add(name, T.AAAA if ":" in address else T.A, address)
    tlsa_name = dns.name.from_text(f"_25._tcp.{host.name}")
    for spec in host.tlsa:
        data = tlsa_rdata.tlsa_data(world.seed, host, spec)
        wire = bytes((spec.usage, spec.selector, spec.mtype)) + data
        # Generic rdata: dnspython rightly refuses a digest of the wrong length in a typed TLSA.
        rdata = dns.rdata.GenericRdata(IN, T.TLSA, wire) if spec.malformed else None
        rdata = rdata or dns.rdata.from_wire(IN, T.TLSA, wire, 0, len(wire))
        zone.add_rdata(tlsa_name, rdata)
    if host.tlsa_fault == "rrsig_invalid":
        zone.broken_tlsa = (*zone.broken_tlsa, tlsa_name)
    if host.tlsa_fault == "denial_bogus":
        zone.broken_denial = (*zone.broken_denial, name)


def domain_zone(world: World, domain: Domain) -> Zone:
    origin = dns.name.from_text(domain.name)
    zone = Zone(
        origin,
        serial_of(world),
        signed=domain.signed,
        algorithm=domain.algorithm,
        denial=domain.denial,
        nsec3_iterations=domain.nsec3_iterations,
        nsec3_salt=domain.nsec3_salt,
        fault=domain.fault,
    )
    if domain.signed:
        zone.keys = domain_keys(world, domain)
    ns = world.ns_records(domain)
    _soa(zone, ns[0], f"hostmaster.{domain.name}")
    zone.add(origin, T.NS, *ns)
    for pref, host in world.mx_records(domain):
        zone.add(origin, T.MX, f"{pref} {host}")
    web = f"127.80.{domain.index % 250}.{1 + domain.index // 250 % 250}"
    zone.add(origin, T.A, web)
    zone.add("www", T.CNAME, domain.name)
    zone.add(origin, T.TXT, '"v=spf1 mx -all"')
    if domain.wildcard:
        zone.add("*", T.A, web)
    if domain.dns == "self":
        zone.add("ns1", T.A, BLACKHOLE_ADDRESS)
        zone.add("ns2", T.A, BLACKHOLE_ADDRESS)
    if domain.mail in ("self", "self_dane"):
        add_mx_host(world, zone, world.self_host(domain))
    return zone


def zone_origin_for(world: World, qname: dns.name.Name) -> dns.name.Name | None:
    """The deepest lab zone that holds `qname` (delegated and existing on this date)."""
    labels = qname.labels
    if len(labels) >= 3:
        tld = labels[-2].decode("ascii", "replace").lower()
        if tld in ALL_TLDS:
            sld = dns.name.Name(labels[-3:])
            if tld == INFRA_TLD.label:
                if labels[-3].lower().decode("ascii", "replace") in (
                    "nic",
                    *MAIL_PROVIDERS,
                    *DNS_PROVIDERS,
                ):
                    return sld
            elif world.lookup_domain(labels[-3:]) is not None:
                return sld
    if len(labels) >= 2 and labels[-2].decode("ascii", "replace").lower() in ALL_TLDS:
        return dns.name.Name(labels[-2:])
    return ROOT


def build_zone(world: World, origin: dns.name.Name) -> Zone | None:
    """The zone named `origin` on this date, or None when the lab has no such zone."""
    if origin == ROOT:
        return root_zone(world)
    labels = origin.labels
    tld = ALL_TLDS.get(labels[-2].decode("ascii", "replace").lower())
    if tld is None:
        return None
    if len(labels) == 2:
        return tld_zone(world, tld)
    if len(labels) != 3:
        return None
    if tld is INFRA_TLD:
        return provider_zone(world, origin.to_text().lower())
    domain = world.lookup_domain(labels)
    return domain_zone(world, domain) if domain else None
