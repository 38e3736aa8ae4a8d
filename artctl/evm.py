"""EVM addresses: EIP-55 checksums, so a mistyped royalty recipient is caught before the drop.

A mixed-case address carries a checksum in the case of its letters (Keccak-256 of the lowercase
hex); an all-lowercase or all-uppercase address carries none and is accepted as it is.
"""

from __future__ import annotations

import re

from Crypto.Hash import keccak  # pycryptodome: hashlib's sha3_256 is NIST SHA-3, not Keccak

EVM_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def checksum_address(address: str) -> str:
    """The EIP-55 spelling of a 20-byte hex address."""
    if not EVM_ADDRESS.match(address):
        raise ValueError(f"not an EVM address (0x + 40 hex digits): {address!r}")
    plain = address[2:].lower()
    digest = keccak.new(digest_bits=256, data=plain.encode("ascii")).hexdigest()
    return "0x" + "".join(c.upper() if c.isalpha() and int(d, 16) >= 8 else c for c, d in zip(plain, digest))


def checksum_problem(address: str) -> str | None:
    """Why a mixed-case address fails its EIP-55 checksum (None when it passes or has none)."""
    body = address[2:]
    if body == body.lower() or body == body.upper():
        return None
    expected = checksum_address(address)
    if address != expected:
        return (
            f"its EIP-55 checksum is wrong (did you mean {expected}?); a typo here sends royalties elsewhere"
        )
    return None
