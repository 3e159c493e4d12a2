"""Deterministic key material for the lab: the same (seed, label) always gives the same key.

EC and Ed25519 keys are derived straight from the seed. `cryptography` cannot generate RSA keys
from a seed, so RSA primes are drawn here from a seeded generator with Miller-Rabin; only a small
pool of RSA keys exists per seed, which keeps the cost to a few RSA generations per process.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import random
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

RSA_POOL_SIZE = 4

_CURVES = {"p256": ec.SECP256R1(), "p384": ec.SECP384R1()}
_ORDERS = {
    "p256": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "p384": int(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973",
        16,
    ),
}


def digest(seed: int, *parts: object, size: int = 32) -> bytes:
    """A stable hash of the seed and any parts: the lab's only source of randomness."""
    h = hashlib.blake2b(digest_size=size)
    h.update(str(seed).encode())
    for part in parts:
        h.update(b"\x1f")
        h.update(str(part).encode())
    return h.digest()


def unit(seed: int, *parts: object) -> float:
    """A stable pseudo-random number in [0, 1)."""
    return int.from_bytes(digest(seed, *parts, size=8), "big") / 2**64


@functools.lru_cache(maxsize=4096)
def ec_key(seed: int, label: str, curve: str = "p256") -> ec.EllipticCurvePrivateKey:
    order = _ORDERS[curve]
    value = int.from_bytes(digest(seed, "ec", curve, label, size=64), "big") % (order - 1) + 1
    return ec.derive_private_key(value, _CURVES[curve])


@functools.lru_cache(maxsize=4096)
def ed25519_key(seed: int, label: str) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.from_private_bytes(digest(seed, "ed25519", label))


def rsa_key(seed: int, label: str, bits: int = 2048) -> rsa.RSAPrivateKey:
    """One key of the seed's small RSA pool, chosen by label."""
    slot = int.from_bytes(digest(seed, "rsa-slot", label, size=4), "big") % RSA_POOL_SIZE
    return _rsa_pool_key(seed, slot, bits)


_SMALL_PRIMES = [p for p in range(3, 2000) if all(p % d for d in range(2, int(p**0.5) + 1))]


def _probable_prime(n: int, rng: random.Random) -> bool:
    if any(n % p == 0 for p in _SMALL_PRIMES):
        return n in _SMALL_PRIMES
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for _ in range(24):
        x = pow(rng.randrange(2, n - 2), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(bits: int, rng: random.Random) -> int:
    while True:
        n = rng.getrandbits(bits) | (3 << (bits - 2)) | 1
        if n % 65537 != 1 and _probable_prime(n, rng):
            return n


CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "survey-lab"


@functools.lru_cache(maxsize=32)
def _rsa_pool_key(seed: int, slot: int, bits: int) -> rsa.RSAPrivateKey:
    """Pure-Python prime search takes about a second a key, so keys are also kept on disk.

    The cache is only a cache: a missing or unreadable file is recomputed to the same key.
    """
    path = CACHE_DIR / f"rsa-{seed}-{slot}-{bits}.pem"
    with contextlib.suppress(OSError, ValueError):
        key = serialization.load_pem_private_key(
            path.read_bytes(), None, unsafe_skip_rsa_key_validation=True
        )
        if isinstance(key, rsa.RSAPrivateKey):
            return key
    key = _generate_rsa(seed, slot, bits)
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        tmp.replace(path)
    return key


def _generate_rsa(seed: int, slot: int, bits: int) -> rsa.RSAPrivateKey:
    rng = random.Random(digest(seed, "rsa", slot, bits))
    e = 65537
    while True:
        p, q = _prime(bits // 2, rng), _prime(bits // 2, rng)
        if p != q:
            break
    if p < q:
        p, q = q, p
    phi = (p - 1) * (q - 1)
    d = pow(e, -1, phi)
    public = rsa.RSAPublicNumbers(e, p * q)
    numbers = rsa.RSAPrivateNumbers(
        p, q, d, d % (p - 1), d % (q - 1), rsa.rsa_crt_iqmp(p, q), public
    )
    return numbers.private_key()
