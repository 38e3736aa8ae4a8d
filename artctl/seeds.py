"""The seed contract: the one place where seeds become latents, token seeds, trait draws and hashes.

Every image artctl makes is a pure function of (model bytes, seed, psi, label). These functions are
that promise, versioned: the trainer's preview grids, the exporter's parity check, the server, mint
and verify all call them and nothing else. Changing any output here means a new version string.
The spec is in docs/seed-contract.md; it is short enough to re-implement in any language.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

LATENT_CONTRACT = "artctl-latent-v1"
TOKEN_CONTRACT = "artctl-token-v1"
TRAIT_CONTRACT = "artctl-trait-v1"
PIXELS_CONTRACT = "artctl-pixels-v1"
PROVENANCE_CONTRACT = "bayc-sha256-concat-v1"

CONTRACTS: dict[str, str] = {
    "latent": LATENT_CONTRACT,
    "token": TOKEN_CONTRACT,
    "trait": TRAIT_CONTRACT,
    "pixels": PIXELS_CONTRACT,
    "provenance": PROVENANCE_CONTRACT,
}

SEED_MAX = 2**64 - 1

# Philox4x32-10 constants (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC11).
_PHILOX_M0 = np.uint64(0xD2511F53)
_PHILOX_M1 = np.uint64(0xCD9E8D57)
_PHILOX_W0 = np.uint64(0x9E3779B9)
_PHILOX_W1 = np.uint64(0xBB67AE85)
_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)
_PHILOX_ROUNDS = 10


class SeedError(ValueError):
    """A seed outside 0 <= seed < 2**64, or not an integer."""


def check_seed(seed: Any) -> int:
    """Return `seed` as a Python int, or raise SeedError naming the bad value."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise SeedError(f"seed must be an integer in [0, 2**64), got {seed!r}")
    value = int(seed)
    if value < 0 or value > SEED_MAX:
        raise SeedError(f"seed must be in [0, 2**64), got {value}")
    return value


def as_seed_array(seeds: Iterable[Any] | npt.NDArray[Any]) -> npt.NDArray[np.uint64]:
    """Validate many seeds at once and return them as a 1-D uint64 array."""
    if isinstance(seeds, np.ndarray):
        if seeds.ndim != 1:
            raise SeedError(f"seeds must be one-dimensional, got shape {seeds.shape}")
        if seeds.dtype == np.uint64:
            return seeds
        if np.issubdtype(seeds.dtype, np.unsignedinteger):
            return seeds.astype(np.uint64)
        if np.issubdtype(seeds.dtype, np.signedinteger):
            if seeds.size and int(seeds.min()) < 0:
                raise SeedError(f"seed must be in [0, 2**64), got {int(seeds.min())}")
            return seeds.astype(np.uint64)
        raise SeedError(f"seeds must be integers, got dtype {seeds.dtype}")
    return np.array([check_seed(s) for s in seeds], dtype=np.uint64)


def philox4x32_10(counter: npt.NDArray[np.uint64], key: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """Philox4x32-10 on arrays: counter [..., 4] and key [..., 2] of 32-bit words held in uint64.

    Returns [..., 4] output words (each < 2**32). Products of two 32-bit words fit in uint64, so
    the mulhi/mullo pairs are exact.
    """
    x0, x1, x2, x3 = (counter[..., i].astype(np.uint64) for i in range(4))
    k0 = key[..., 0].astype(np.uint64)
    k1 = key[..., 1].astype(np.uint64)
    for rnd in range(_PHILOX_ROUNDS):
        if rnd:
            k0 = (k0 + _PHILOX_W0) & _MASK32
            k1 = (k1 + _PHILOX_W1) & _MASK32
        p0 = _PHILOX_M0 * x0
        p1 = _PHILOX_M1 * x2
        hi0, lo0 = p0 >> _SHIFT32, p0 & _MASK32
        hi1, lo1 = p1 >> _SHIFT32, p1 & _MASK32
        x0, x1, x2, x3 = hi1 ^ x1 ^ k0, lo1, hi0 ^ x3 ^ k1, lo0
    return np.stack([x0, x1, x2, x3], axis=-1)


def latents(seeds: Iterable[Any] | npt.NDArray[Any], dim: int) -> npt.NDArray[np.float32]:
    """Latents for many seeds at once: float32 [len(seeds), dim] (contract artctl-latent-v1).

    Row i equals `latent(seeds[i], dim)` exactly; the work is vectorised over seeds and blocks.
    """
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim!r}")
    seed_arr = as_seed_array(seeds)
    n_blocks = (int(dim) + 3) // 4
    key = np.stack([seed_arr & _MASK32, seed_arr >> _SHIFT32], axis=-1)  # [N, 2]
    counter = np.zeros((n_blocks, 4), dtype=np.uint64)
    counter[:, 0] = np.arange(n_blocks, dtype=np.uint64)
    words = philox4x32_10(counter[None, :, :], key[:, None, :])  # [N, blocks, 4]
    u = (words.astype(np.float64) + 0.5) / 2.0**32
    r1 = np.sqrt(-2.0 * np.log(u[..., 0]))
    t1 = 2.0 * np.pi * u[..., 1]
    r2 = np.sqrt(-2.0 * np.log(u[..., 2]))
    t2 = 2.0 * np.pi * u[..., 3]
    normals = np.stack([r1 * np.cos(t1), r1 * np.sin(t1), r2 * np.cos(t2), r2 * np.sin(t2)], axis=-1)
    return normals.reshape(len(seed_arr), n_blocks * 4)[:, : int(dim)].astype(np.float32)


def latent(seed: Any, dim: int) -> npt.NDArray[np.float32]:
    """The latent vector of one seed: float32 [dim] (contract artctl-latent-v1)."""
    return latents([check_seed(seed)], dim)[0]


def _sha256_u64(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def _check_token_id(token_id: Any) -> int:
    if isinstance(token_id, bool) or not isinstance(token_id, (int, np.integer)) or token_id < 0:
        raise ValueError(f"token_id must be a non-negative integer, got {token_id!r}")
    return int(token_id)


def token_seed(salt: str, token_id: int) -> int:
    """The seed of a collection token (contract artctl-token-v1)."""
    return _sha256_u64(f"{TOKEN_CONTRACT}:{salt}:{_check_token_id(token_id)}")


def trait_draw(
    salt: str, token_id: int, trait_name: str, values: Sequence[str], weights: Sequence[int]
) -> str:
    """Draw one trait value for a token with integer rarity weights (contract artctl-trait-v1).

    u = h / 2**64 with h the first 8 bytes (LE) of the SHA-256 of the draw's key; the first value
    whose cumulative weight / total > u wins. The comparison is done exactly in integers
    (cum * 2**64 > h * total), so no float rounding can move a boundary.
    """
    if len(values) != len(weights) or not values:
        raise ValueError(f"trait {trait_name!r}: need as many weights as values (at least one)")
    if any(isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 0 for w in weights):
        raise ValueError(f"trait {trait_name!r}: weights must be non-negative integers, got {weights!r}")
    total = sum(int(w) for w in weights)
    if total <= 0:
        raise ValueError(f"trait {trait_name!r}: weights must not all be zero")
    h = _sha256_u64(f"{TRAIT_CONTRACT}:{salt}:{_check_token_id(token_id)}:{trait_name}")
    cumulative = 0
    for value, weight in zip(values, weights):
        cumulative += int(weight)
        if cumulative * 2**64 > h * total:
            return value
    raise AssertionError("unreachable: the last cumulative weight always exceeds u")


def pixel_sha256(image_hwc: npt.NDArray[np.uint8]) -> str:
    """SHA-256 (hex) that names an image's pixels independently of any PNG encoder."""
    if not isinstance(image_hwc, np.ndarray) or image_hwc.dtype != np.uint8 or image_hwc.ndim != 3:
        raise ValueError("pixel_sha256 needs a uint8 array of shape [H, W, C]")
    h, w, c = image_hwc.shape
    digest = hashlib.sha256(f"{PIXELS_CONTRACT}:{h}x{w}x{c}:".encode("ascii"))
    digest.update(np.ascontiguousarray(image_hwc).tobytes())
    return digest.hexdigest()


class Provenance:
    """The provenance hash built one image digest at a time, in token order (memory stays flat).

    SHA-256 over the lowercase hex SHA-256 of each image file, concatenated with no separator.
    """

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self.count = 0

    def add(self, file_sha256_hex: str) -> None:
        text = str(file_sha256_hex).lower()
        if len(text) != 64 or any(ch not in "0123456789abcdef" for ch in text):
            raise ValueError(f"entry {self.count} is not a SHA-256 hex digest: {file_sha256_hex!r}")
        self._digest.update(text.encode("ascii"))
        self.count += 1

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def provenance(file_sha256_hex: Iterable[str]) -> str:
    """Provenance hash of a collection: SHA-256 of the per-file SHA-256 hex strings in token order."""
    running = Provenance()
    for item in file_sha256_hex:
        running.add(item)
    return running.hexdigest()
