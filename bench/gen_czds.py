"""A CZDS-format zone file of any size with .com-like proportions, for the ingestion benchmark.

Per delegation: two NS lines; 6 % are signed (a DS line and its RRSIG, an NSEC3 and its RRSIG);
3 % have in-bailiwick nameservers (two A lines, one AAAA of glue). Owner names are lower-case
and absolute, tab-separated as ICANN's CZDS serves them.

    python bench/gen_czds.py --lines 20000000 --out bench/out/big.txt.gz
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
from pathlib import Path

TLD = "bench"
PROVIDERS = [f"ns{i}.dnsprovider{j}.net." for j in range(400) for i in (1, 2)]


def lines(target: int):
    written = 0
    yield f"{TLD}.\t86400\tin\tsoa\ta.nic.{TLD}. hostmaster.nic.{TLD}. 2026110101 1800 900 604800 86400\n"
    i = 0
    while written < target:
        i += 1
        h = hashlib.blake2b(i.to_bytes(8, "big"), digest_size=16).digest()
        name = f"d{h[:5].hex()}{i}.{TLD}."
        block = []
        if h[5] < 8:  # in-bailiwick servers with glue
            block += [f"{name}\t172800\tin\tns\tns1.{name}\n", f"{name}\t172800\tin\tns\tns2.{name}\n",
                      f"ns1.{name}\t172800\tin\ta\t192.0.2.{h[6]}\n", f"ns2.{name}\t172800\tin\ta\t198.51.100.{h[7]}\n",
                      f"ns1.{name}\t172800\tin\taaaa\t2001:db8::{h[8]:x}\n"]  # fmt: skip
        else:
            p = (h[6] * 256 + h[7]) % 400
            block += [f"{name}\t172800\tin\tns\t{PROVIDERS[2 * p]}\n", f"{name}\t172800\tin\tns\t{PROVIDERS[2 * p + 1]}\n"]  # fmt: skip
        if h[9] < 16:
            digest = hashlib.sha256(h).hexdigest().upper()
            block.append(f"{name}\t86400\tin\tds\t{h[10] * 256 + h[11]} 13 2 {digest}\n")
            block.append(
                f"{name}\t86400\tin\trrsig\tDS 8 2 86400 20261201000000 20261101000000 1234 {TLD}. {h.hex()}{h.hex()}\n"
            )
            hashed = hashlib.sha1(h).hexdigest()[:32]
            block.append(f"{hashed}.{TLD}.\t86400\tin\tnsec3\t1 1 0 - {hashed} NS DS RRSIG\n")
            block.append(
                f"{hashed}.{TLD}.\t86400\tin\trrsig\tNSEC3 8 2 86400 20261201000000 20261101000000 1234 {TLD}. {h.hex()}\n"
            )
        written += len(block)
        yield from block


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=20_000_000)
    parser.add_argument("--out", type=Path, default=Path("bench/out/big.txt.gz"))
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    with tmp.open("wb") as out:
        gz = subprocess.Popen(["gzip", "-6", "-n"], stdin=subprocess.PIPE, stdout=out)
        buffer = []
        for line in lines(args.lines):
            buffer.append(line)
            if len(buffer) >= 100_000:
                gz.stdin.write("".join(buffer).encode())
                buffer = []
        gz.stdin.write("".join(buffer).encode())
        gz.stdin.close()
        gz.wait()
    tmp.replace(args.out)


if __name__ == "__main__":
    main()
