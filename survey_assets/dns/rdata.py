"""A TLSA record type that keeps records with data of the wrong length instead of refusing them.

dnspython (rightly, for a library) refuses a TLSA record whose digest length does not fit its
matching type, and with it the whole message. A survey must see such a record to report it
(`tlsa_malformed`), so the scanner parses TLSA with this class; a record whose length is wrong
carries `malformed = True`. Installed into dnspython's type registry by `install()`.
"""

from __future__ import annotations

import dns.rdata
import dns.rdataclass
import dns.rdatatype
from dns.rdtypes.ANY.TLSA import TLSA


class LenientTLSA(TLSA):
    """TLSA that accepts any certificate-association length, and says when it is wrong."""

    def __init__(self, rdclass, rdtype, usage, selector, mtype, cert):
        try:
            super().__init__(rdclass, rdtype, usage, selector, mtype, cert)
        except ValueError:
            dns.rdata.Rdata.__init__(self, rdclass, rdtype)
            object.__setattr__(self, "usage", self._as_uint8(usage))
            object.__setattr__(self, "selector", self._as_uint8(selector))
            object.__setattr__(self, "mtype", self._as_uint8(mtype))
            object.__setattr__(self, "cert", self._as_bytes(cert))

    @property
    def malformed(self) -> bool:
        expected = {1: 32, 2: 64}.get(self.mtype)
        return expected is not None and len(self.cert) != expected


def install() -> None:
    """Parse every IN TLSA record with LenientTLSA from now on (idempotent)."""
    dns.rdata._rdata_classes[(dns.rdataclass.IN, dns.rdatatype.TLSA)] = LenientTLSA
