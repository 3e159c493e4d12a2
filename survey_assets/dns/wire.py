"""A lean reader of DNS responses for the scanner's hot path, held to dnspython's rules.

dnspython builds a full object graph per message (names, rdata classes, sets hashed by their
canonical form): about a millisecond per answer on the survey's machines, most of a scan's
time. The validator needs much less: each RRset's owner, type and records as bytes, and a few
fields of RRSIG, DNSKEY, DS, NSEC and NSEC3. `parse` reads exactly that, and reads it by
dnspython's rules, so the two never disagree about a message:

- it accepts only what it reads completely: opcode QUERY, class IN, EDNS without options, and
  the record types the scanner meets (A, AAAA, NS, CNAME, PTR, SOA, MX, DS, RRSIG, NSEC, DNSKEY,
  NSEC3, TLSA); anything else returns None and `from_message` takes dnspython's parse instead;
- names as dnspython reads them: compression only in the owner, the question and the types of
  RFC 1035 (NS, CNAME, PTR, SOA, MX), pointers only backwards, at most 16 hops, 255 octets;
- the same length checks per type (an A of 4 octets, a DS digest of its type's length, NSEC
  bitmaps in order, a non-empty NSEC3 hash, no trailing octets), so what dnspython would reject
  is left to dnspython, which rejects it;
- RRsets as dnspython's message builds them: records of one (owner, type, covered type) merged
  in order of appearance, duplicates (equal canonical forms) dropped, the smallest TTL, and
  only the last record of a singleton type (SOA, CNAME, NSEC) kept.

Names are tuples of lower-case labels without the root label (the root is `()`): equality is
DNS equality, `name[::-1]` sorts in DNSSEC canonical order (RFC 4034 §6.1), and a suffix is an
ancestor. The owner's labels as sent are kept for presentation (`to_dnspython`).
"""

from __future__ import annotations

import base64
import re
import struct
import time

import dns.flags
import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

__all__ = ["RRset", "Rdata", "View", "from_message", "name_of", "parse", "wire_of"]

A, NS, CNAME, SOA, PTR, MX, AAAA = 1, 2, 5, 6, 12, 15, 28
OPT, DS, RRSIG, NSEC, DNSKEY, NSEC3, TLSA = 41, 43, 46, 47, 48, 50, 52
_SINGLETONS = frozenset({SOA, CNAME, NSEC, 30, 39})  # dnspython's: SOA, NXT, DNAME, NSEC, CNAME
_DS_DIGEST_LENGTHS = {1: 20, 2: 32, 3: 32, 4: 48}
_MAX_HOPS = 16
_HEADER = struct.Struct("!6H")
_RR = struct.Struct("!HHIH")
_H = struct.Struct("!H")
_RRSIG_HEADER = struct.Struct("!HBBIIIH")
_QR = int(dns.flags.QR)


class _Decline(Exception):
    """Not for the fast path: dnspython decides what this message is."""


Name = tuple  # of lower-case labels (bytes), without the root label

# A name of letters, digits, hyphens and underscores (the survey's targets), absolute and at
# most 254 characters: its presentation text is itself, and its labels are its text's.
PLAIN_TEXT = re.compile(r"(?:[A-Za-z0-9_-]{1,63}\.)+")


def is_plain(text: str) -> bool:
    return len(text) <= 254 and PLAIN_TEXT.fullmatch(text) is not None


def name_of(name: dns.name.Name) -> Name:
    """A dnspython name (absolute) as a tuple of lower-case labels."""
    return tuple(label.lower() for label in name.labels if label)


def wire_of(name: Name) -> bytes:
    """The uncompressed wire form of a name (lower case if the labels are)."""
    return b"".join(bytes((len(label),)) + label for label in name) + b"\x00"


def _name(wire: bytes, pos: int, end: int, decompress: bool) -> tuple[tuple, int]:
    """Labels as sent, and where the name ends in the stream: dnspython's rules (see module)."""
    labels = []
    total = 1
    after = -1  # the stream position after the first pointer, once one is followed
    start = pos  # where the current stretch of labels began
    limit = end
    hops = 0
    while True:
        if pos >= limit:
            raise _Decline
        count = wire[pos]
        pos += 1
        if count == 0:
            break
        if count < 64:
            if pos + count > limit:
                raise _Decline
            labels.append(wire[pos : pos + count])
            pos += count
            total += count + 1
        elif count >= 192:
            if not decompress or pos >= limit:
                raise _Decline
            target = ((count & 0x3F) << 8) | wire[pos]
            pos += 1
            # Backwards only, each pointer before the stretch that led to it, which the
            # target may not run into.
            if target >= start:
                raise _Decline
            hops += 1
            if hops > _MAX_HOPS:
                raise _Decline
            if after < 0:
                after = pos
            limit, start, pos = start, target, target
        else:
            raise _Decline
    if total > 255:
        raise _Decline
    return tuple(labels), (after if after >= 0 else pos)


class Rdata:
    """A record's data: `wire` as sent (names uncompressed, case kept), `canon` its DNSSEC
    canonical form (RFC 4034 §6.2 as dnspython applies it: names of the RFC 1035 types and
    the RRSIG signer in lower case, the NSEC next name as sent, RFC 6840 §5.1)."""

    __slots__ = ("rdtype", "wire", "canon")

    def __init__(self, rdtype: int, wire: bytes, canon: bytes) -> None:
        self.rdtype, self.wire, self.canon = rdtype, wire, canon


class Rrsig(Rdata):
    __slots__ = ("type_covered", "algorithm", "labels", "original_ttl", "expiration",
                 "inception", "key_tag", "signer", "signer_labels", "signature")  # fmt: skip


class Dnskey(Rdata):
    __slots__ = ("flags", "protocol", "algorithm", "key", "_key_tag")

    @property
    def key_tag(self) -> int:
        """RFC 4034 Appendix B (as dnspython's key_id, including algorithm 1's rule)."""
        if self._key_tag is None:
            self._key_tag = key_tag_of(self.algorithm, self.wire)
        return self._key_tag


class Ds(Rdata):
    __slots__ = ("key_tag", "algorithm", "digest_type", "digest")


class _WithBitmap(Rdata):
    """NSEC and NSEC3: a type bitmap, read into types on first use."""

    __slots__ = ("bitmap", "_types")

    @property
    def types(self) -> frozenset[int]:
        if self._types is None:
            self._types = _types(self.bitmap)
        return self._types


class Nsec(_WithBitmap):
    __slots__ = ("next", "next_labels")


class Nsec3(_WithBitmap):
    __slots__ = ("algorithm", "flags", "iterations", "salt", "next")


class Cname(Rdata):
    __slots__ = ("target",)


def key_tag_of(algorithm: int, wire: bytes) -> int:
    if algorithm == 1:
        return (wire[-3] << 8) + wire[-2]
    total = sum(wire[0::2]) << 8
    total += sum(wire[1::2])
    total += (total >> 16) & 0xFFFF
    return total & 0xFFFF


def _types(bitmap: bytes) -> frozenset[int]:
    types = set()
    pos = 0
    while pos < len(bitmap):
        window, length = bitmap[pos], bitmap[pos + 1]
        for i, byte in enumerate(bitmap[pos + 2 : pos + 2 + length]):
            if byte:
                base = window * 256 + i * 8
                for bit in range(8):
                    if byte & (0x80 >> bit):
                        types.add(base + bit)
        pos += 2 + length
    return frozenset(types)


def _check_bitmap(wire: bytes, pos: int, end: int) -> None:
    """dnspython's Bitmap rules: windows ascending, 1 to 32 octets, no trailing zero octet."""
    last = -1
    while pos < end:
        if pos + 2 > end:
            raise _Decline
        window, length = wire[pos], wire[pos + 1]
        if window <= last or not 0 < length <= 32 or pos + 2 + length > end:
            raise _Decline
        if wire[pos + 1 + length] == 0:
            raise _Decline
        last = window
        pos += 2 + length


def _names_wire(wire: bytes, start: int, after: int, labels: tuple) -> bytes:
    """A name's uncompressed wire form (case kept): the octets as sent when no pointer was
    followed. Its `.lower()` is the canonical form: length octets (< 64) are not letters."""
    if after - start == sum(map(len, labels)) + len(labels) + 1:
        return wire[start:after]
    return _plain_wire(labels)


def _plain_wire(labels: tuple) -> bytes:
    return b"".join(bytes((len(label),)) + label for label in labels) + b"\x00"


def _read_rdata(rdtype: int, wire: bytes, pos: int, end: int) -> Rdata:
    """One record's data between pos and end (of the message `wire`): the rules above."""
    size = end - pos
    if rdtype == RRSIG:
        if size < 18:
            raise _Decline
        signer, after = _name(wire, pos + 18, end, False)  # uncompressed: the octets as sent
        header = wire[pos : pos + 18]
        signature = wire[after:end]
        rd = Rrsig(RRSIG, wire[pos:end], header + wire[pos + 18 : after].lower() + signature)
        (rd.type_covered, rd.algorithm, rd.labels, rd.original_ttl, rd.expiration,
         rd.inception, rd.key_tag) = _RRSIG_HEADER.unpack(header)  # fmt: skip
        rd.signer, rd.signer_labels = tuple(map(bytes.lower, signer)), signer
        rd.signature = signature
        return rd
    if rdtype == NSEC:
        nxt, after = _name(wire, pos, end, False)
        _check_bitmap(wire, after, end)
        data = wire[pos:end]
        rd = Nsec(NSEC, data, data)
        rd.next, rd.next_labels = tuple(map(bytes.lower, nxt)), nxt
        rd.bitmap, rd._types = wire[after:end], None
        return rd
    if rdtype == NSEC3:
        if size < 5:
            raise _Decline
        salt_end = pos + 5 + wire[pos + 4]
        if salt_end + 1 > end:
            raise _Decline
        next_end = salt_end + 1 + wire[salt_end]
        if next_end == salt_end + 1 or next_end > end:
            raise _Decline
        _check_bitmap(wire, next_end, end)
        data = wire[pos:end]
        rd = Nsec3(NSEC3, data, data)
        rd.algorithm, rd.flags = wire[pos], wire[pos + 1]
        rd.iterations = (wire[pos + 2] << 8) | wire[pos + 3]
        rd.salt, rd.next = wire[pos + 5 : salt_end], wire[salt_end + 1 : next_end]
        rd.bitmap, rd._types = wire[next_end:end], None
        return rd
    if rdtype == DNSKEY:
        if size < 4:
            raise _Decline
        data = wire[pos:end]
        rd = Dnskey(DNSKEY, data, data)
        rd.flags = (wire[pos] << 8) | wire[pos + 1]
        rd.protocol, rd.algorithm = wire[pos + 2], wire[pos + 3]
        rd.key, rd._key_tag = wire[pos + 4 : end], None
        return rd
    if rdtype == DS:
        if size < 4:
            raise _Decline
        digest_type = wire[pos + 3]
        expected = _DS_DIGEST_LENGTHS.get(digest_type)
        if digest_type == 0 or (expected is not None and size - 4 != expected):
            raise _Decline  # dnspython refuses these
        data = wire[pos:end]
        rd = Ds(DS, data, data)
        rd.key_tag, rd.algorithm = (wire[pos] << 8) | wire[pos + 1], wire[pos + 2]
        rd.digest_type, rd.digest = digest_type, wire[pos + 4 : end]
        return rd
    if rdtype in (A, AAAA):
        if size != (4 if rdtype == A else 16):
            raise _Decline
        data = wire[pos:end]
        return Rdata(rdtype, data, data)
    if rdtype == MX:
        if size < 2:
            raise _Decline
        target, after = _name(wire, pos + 2, end, True)
        if after != end:
            raise _Decline
        pref, exchange = wire[pos : pos + 2], _names_wire(wire, pos + 2, after, target)
        return Rdata(MX, pref + exchange, pref + exchange.lower())
    if rdtype in (NS, CNAME, PTR):
        target, after = _name(wire, pos, end, True)
        if after != end:
            raise _Decline
        data = _names_wire(wire, pos, after, target)
        rd = Cname(rdtype, data, data.lower())
        rd.target = tuple(map(bytes.lower, target))
        return rd
    if rdtype == SOA:
        mname, middle = _name(wire, pos, end, True)
        rname, after = _name(wire, middle, end, True)
        if end - after != 20:
            raise _Decline
        names = _names_wire(wire, pos, middle, mname) + _names_wire(wire, middle, after, rname)
        return Rdata(SOA, names + wire[after:end], names.lower() + wire[after:end])
    if rdtype == TLSA:  # the survey's lenient TLSA: any association data after 3 octets
        if size < 3:
            raise _Decline
        data = wire[pos:end]
        return Rdata(TLSA, data, data)
    raise _Decline


class RRset:
    """Records of one owner, type and covered type, in one section."""

    __slots__ = ("name", "owner", "rdtype", "covers", "ttl", "rdatas", "_seen")

    def __init__(self, name: Name, owner: tuple, rdtype: int, covers: int, ttl: int) -> None:
        self.name, self.owner, self.rdtype, self.covers = name, owner, rdtype, covers
        self.ttl, self.rdatas, self._seen = ttl, [], set()

    def add(self, rd: Rdata, ttl: int) -> None:
        if ttl < self.ttl:
            self.ttl = ttl
        if self.rdtype in _SINGLETONS and self.rdatas:
            self.rdatas, self._seen = [], set()
        if rd.canon not in self._seen:
            self._seen.add(rd.canon)
            self.rdatas.append(rd)

    def __iter__(self):
        return iter(self.rdatas)

    def __len__(self) -> int:
        return len(self.rdatas)

    def __getitem__(self, i: int) -> Rdata:
        return self.rdatas[i]

    def to_text(self) -> str:
        """Presentation text, exactly as dnspython's RRset.to_text() writes it."""
        prefix = f"{name_text(self.owner)} {self.ttl} IN {_type_text(self.rdtype)} "
        return "\n".join(prefix + _rdata_text(self.rdtype, rd) for rd in self.rdatas)

    def to_dnspython(self) -> dns.rrset.RRset:
        rrset = dns.rrset.RRset(dns.name.Name((*self.owner, b"")), dns.rdataclass.IN,
                                self.rdtype, self.covers)  # fmt: skip
        for rd in self.rdatas:
            rrset.add(dns.rdata.from_wire(dns.rdataclass.IN, self.rdtype, rd.wire, 0,
                                          len(rd.wire)), self.ttl)  # fmt: skip
        return rrset


# --- presentation text ---------------------------------------------------------------------------
_SPECIAL = frozenset(b'"().;\\@$')
_LABEL_TEXT: dict[bytes, str] = {}
_RDATA_TEXT: dict[tuple[int, bytes], str] = {}
_TYPE_TEXT: dict[int, str] = {}
_SIGTIME: dict[int, str] = {}
_BITMAP_TEXT: dict[bytes, str] = {}


def _label_text(label: bytes) -> str:
    """dnspython's escaping of a label: specials with a backslash, other octets outside
    0x21-0x7e as \\DDD."""
    text = _LABEL_TEXT.get(label)
    if text is None:
        text = "".join(
            "\\" + chr(c) if c in _SPECIAL else chr(c) if 0x20 < c < 0x7F else f"\\{c:03d}"
            for c in label
        )
        if len(_LABEL_TEXT) > 100_000:
            _LABEL_TEXT.clear()
        _LABEL_TEXT[label] = text
    return text


def name_text(labels: tuple) -> str:
    """An absolute name's presentation text, as dnspython's Name.to_text() writes it."""
    if not labels:
        return "."
    return ".".join([_label_text(label) for label in labels]) + "."


def _type_text(rdtype: int) -> str:
    text = _TYPE_TEXT.get(rdtype)
    if text is None:
        text = _TYPE_TEXT[rdtype] = dns.rdatatype.to_text(rdtype)
    return text


def _sigtime(when: int) -> str:
    text = _SIGTIME.get(when)
    if text is None:
        text = time.strftime("%Y%m%d%H%M%S", time.gmtime(when))
        if len(_SIGTIME) > 10_000:
            _SIGTIME.clear()
        _SIGTIME[when] = text
    return text


def _bitmap_text(bitmap: bytes) -> str:
    """dnspython's Bitmap.to_text: each type, ascending, after a space."""
    text = _BITMAP_TEXT.get(bitmap)
    if text is None:
        text = "".join(" " + _type_text(t) for t in sorted(_types(bitmap)))
        if len(_BITMAP_TEXT) > 10_000:
            _BITMAP_TEXT.clear()
        _BITMAP_TEXT[bitmap] = text
    return text


def _rdata_text(rdtype: int, rd: Rdata) -> str:
    """A record's data as dnspython writes it: RRSIG, NSEC and NSEC3 written here (each answer
    brings new ones), the others by dnspython once per distinct record (the same MX hosts and
    SOA records serve thousands of domains)."""
    if rdtype == RRSIG and isinstance(rd, Rrsig):
        signature = base64.b64encode(rd.signature)
        chunks = b" ".join([signature[i : i + 32] for i in range(0, len(signature), 32)])
        return (f"{_type_text(rd.type_covered)} {rd.algorithm} {rd.labels} {rd.original_ttl} "
                f"{_sigtime(rd.expiration)} {_sigtime(rd.inception)} {rd.key_tag} "
                f"{name_text(rd.signer_labels)} {chunks.decode()}")  # fmt: skip
    if rdtype == NSEC3 and isinstance(rd, Nsec3):
        following = base64.b32hexencode(rd.next).lower().decode().rstrip("=")
        return (f"{rd.algorithm} {rd.flags} {rd.iterations} {rd.salt.hex() or '-'} "
                f"{following}{_bitmap_text(rd.bitmap)}")  # fmt: skip
    if rdtype == NSEC and isinstance(rd, Nsec):
        return name_text(rd.next_labels) + _bitmap_text(rd.bitmap)
    key = (rdtype, rd.wire)
    text = _RDATA_TEXT.get(key)
    if text is None:
        parsed = dns.rdata.from_wire(dns.rdataclass.IN, rdtype, rd.wire, 0, len(rd.wire))
        text = parsed.to_text()
        if len(_RDATA_TEXT) > 100_000:
            _RDATA_TEXT.clear()
        _RDATA_TEXT[key] = text
    return text


class View:
    """What the validator reads of a message."""

    __slots__ = ("id", "flags", "rcode", "question", "answer", "authority", "additional", "opt")

    def __init__(self, id: int, flags: int) -> None:
        self.id, self.flags = id, flags
        self.rcode = flags & 0xF
        self.question: list[tuple[Name, int, int]] = []
        self.answer: list[RRset] = []
        self.authority: list[RRset] = []
        self.additional: list[RRset] = []
        self.opt: tuple[int, int] | None = None  # (payload, TTL field) of the OPT record

    def find(self, section: list[RRset], name: Name, rdtype: int, covers: int = 0):
        for rrset in section:
            if rrset.rdtype == rdtype and rrset.covers == covers and rrset.name == name:
                return rrset
        return None


def parse(wire: bytes) -> View | None:
    """The view of a message, or None when it is not for this reader (dnspython decides)."""
    try:
        return _parse(wire)
    except (_Decline, IndexError, struct.error):
        return None


def _parse(wire: bytes) -> View:
    n = len(wire)
    if n < 12:
        raise _Decline
    id_, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(wire, 0)
    if (flags >> 11) & 0xF:  # opcode: dnspython builds other kinds of message for others
        raise _Decline
    view = View(id_, flags)
    pos = 12
    for _ in range(qdcount):
        labels, pos = _name(wire, pos, n, True)
        if pos + 4 > n:
            raise _Decline
        qtype, qclass = _H.unpack_from(wire, pos)[0], _H.unpack_from(wire, pos + 2)[0]
        view.question.append((tuple(map(bytes.lower, labels)), qtype, qclass))
        pos += 4
    for section, count in ((view.answer, ancount), (view.authority, nscount),
                           (view.additional, arcount)):  # fmt: skip
        index: dict[tuple, RRset] = {}
        for _ in range(count):
            owner, pos = _name(wire, pos, n, True)
            if pos + 10 > n:
                raise _Decline
            rdtype, rdclass, ttl, rdlen = _RR.unpack_from(wire, pos)
            pos += 10
            end = pos + rdlen
            if end > n:
                raise _Decline
            if rdtype == OPT:
                if section is not view.additional or view.opt is not None or owner or rdlen:
                    raise _Decline  # misplaced (dnspython: BadEDNS), or options: dnspython's
                view.opt = (rdclass, ttl)
                view.rcode |= (ttl >> 20) & 0xFF0
                pos = end
                continue
            if rdclass != 1:
                raise _Decline
            rd = _read_rdata(rdtype, wire, pos, end)
            pos = end
            if ttl > 0x7FFFFFFF:
                ttl = 0
            name = tuple(map(bytes.lower, owner))
            covers = rd.type_covered if rdtype == RRSIG else 0
            key = (name, rdtype, covers)
            rrset = index.get(key)
            if rrset is None:
                rrset = index[key] = RRset(name, owner, rdtype, covers, ttl)
                section.append(rrset)
            rrset.add(rd, ttl)
    if pos != n:
        raise _Decline  # trailing octets: dnspython's TrailingJunk
    return view


def from_message(message: dns.message.Message) -> View:
    """The view of a message dnspython has parsed (for what `parse` leaves to dnspython).
    Records of a class other than IN answer no question the scanner asks: they are left out
    (the validator reads the fields of IN records only)."""
    view = View(message.id, int(message.flags))
    view.rcode = int(message.rcode())
    view.question = [(name_of(q.name), int(q.rdtype), int(q.rdclass)) for q in message.question]
    if message.opt is not None:
        view.opt = (int(message.opt[0].rdclass), int(message.opt.ttl))
    for section, source in ((view.answer, message.answer), (view.authority, message.authority),
                            (view.additional, message.additional)):  # fmt: skip
        section.extend(rrset_view(r) for r in source if r.rdclass == dns.rdataclass.IN)
    return view


def rrset_view(rrset: dns.rrset.RRset) -> RRset:
    """A dnspython RRset as the validator reads it."""
    owner = tuple(label for label in rrset.name.labels if label)
    out = RRset(name_of(rrset.name), owner, int(rrset.rdtype), int(rrset.covers), int(rrset.ttl))
    for rdata in rrset:
        rd = rdata_view(rdata)
        out.rdatas.append(rd)
        out._seen.add(rd.canon)
    return out


def rdata_view(rdata: dns.rdata.Rdata) -> Rdata:
    """One dnspython rdata (a DS or DNSKEY of a trust anchor, say) as the validator reads it:
    its fields where this reader reads it as dnspython does (class IN, the same canonical
    form), else just its wire and dnspython's canonical form."""
    data, canon = rdata.to_wire(), rdata.to_digestable()
    try:
        rd = _read_rdata(int(rdata.rdtype), data, 0, len(data))
    except (_Decline, IndexError, struct.error):
        rd = None
    if rd is None or rdata.rdclass != dns.rdataclass.IN or rd.canon != canon:
        return Rdata(int(rdata.rdtype), data, canon)
    return rd


def query_wire(
    id_: int, name: Name | tuple, rdtype: int, flags: int, edns: bool, dnssec: bool, payload: int
) -> bytes:
    """A query as dnspython's make_query(...).to_wire() writes it (labels as given)."""
    header = _HEADER.pack(id_, flags, 1, 0, 0, 1 if edns else 0)
    body = _plain_wire(name) + struct.pack("!HH", rdtype, 1)
    if edns:
        body += b"\x00" + struct.pack("!HHIH", OPT, payload, 0x8000 if dnssec else 0, 0)
    return header + body


def is_response(view: View, id_: int, question: tuple[Name, int, int]) -> bool:
    """dnspython's Message.is_response for a QUERY with one question."""
    if not view.flags & _QR or view.id != id_ or (view.flags >> 11) & 0xF:
        return False
    asked = view.question
    if not asked:
        return view.rcode in (1, 2, 4, 5)
    # Every question equal to ours (a list of one, in practice): compared without a generator.
    return asked[0] == question and (len(asked) == 1 or asked.count(question) == len(asked))
