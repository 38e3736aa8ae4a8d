"""The seed contract (docs/seed-contract.md) against known answers and an independent scalar reference."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from artctl import seeds


def _philox_reference(ctr: list[int], key: list[int]) -> list[int]:
    """Philox4x32-10 written from the paper with Python ints, independent of the numpy version."""
    m0, m1, w0, w1, mask = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85, 0xFFFFFFFF
    x = list(ctr)
    k0, k1 = key
    for rnd in range(10):
        if rnd:
            k0, k1 = (k0 + w0) & mask, (k1 + w1) & mask
        p0, p1 = m0 * x[0], m1 * x[2]
        x = [(p1 >> 32) ^ x[1] ^ k0, p1 & mask, (p0 >> 32) ^ x[3] ^ k1, p0 & mask]
    return x


def _latent_reference(seed: int, dim: int) -> np.ndarray:
    """The latent recipe of docs/seed-contract.md, one scalar at a time with the math module."""
    key = [seed & 0xFFFFFFFF, seed >> 32]
    out: list[float] = []
    j = 0
    while len(out) < dim:
        u = [(w + 0.5) / 2**32 for w in _philox_reference([j, 0, 0, 0], key)]
        r1, t1 = math.sqrt(-2 * math.log(u[0])), 2 * math.pi * u[1]
        r2, t2 = math.sqrt(-2 * math.log(u[2])), 2 * math.pi * u[3]
        out += [r1 * math.cos(t1), r1 * math.sin(t1), r2 * math.cos(t2), r2 * math.sin(t2)]
        j += 1
    return np.array(out[:dim], dtype=np.float32)


KNOWN_ANSWERS = [
    ([0, 0, 0, 0], [0, 0], "6627e8d5 e169c58d bc57ac4c 9b00dbd8"),
    ([0xFFFFFFFF] * 4, [0xFFFFFFFF, 0xFFFFFFFF], "408f276d 41c83b0e a20bc7c6 6d5451fd"),
    (
        [0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344],
        [0xA4093822, 0x299F31D0],
        "d16cfe09 94fdcceb 5001e420 24126ea1",
    ),
]


@pytest.mark.parametrize(("ctr", "key", "expected"), KNOWN_ANSWERS)
def test_philox_known_answers(ctr: list[int], key: list[int], expected: str) -> None:
    out = seeds.philox4x32_10(np.array(ctr, dtype=np.uint64), np.array(key, dtype=np.uint64))
    assert " ".join(f"{int(w):08x}" for w in out) == expected
    assert " ".join(f"{w:08x}" for w in _philox_reference(ctr, key)) == expected


def test_latent_of_seed_zero_follows_from_the_first_known_answer() -> None:
    # seed 0 -> key (0, 0), block 0 -> counter (0, 0, 0, 0): the first known answer's words.
    words = [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    u = [(w + 0.5) / 2**32 for w in words]
    r1, r2 = math.sqrt(-2 * math.log(u[0])), math.sqrt(-2 * math.log(u[2]))
    expected = [
        r1 * math.cos(2 * math.pi * u[1]),
        r1 * math.sin(2 * math.pi * u[1]),
        r2 * math.cos(2 * math.pi * u[3]),
        r2 * math.sin(2 * math.pi * u[3]),
    ]
    got = seeds.latent(0, 4)
    assert got.dtype == np.float32 and got.shape == (4,)
    assert got.tolist() == np.array(expected, dtype=np.float32).tolist()


@pytest.mark.parametrize("seed", [0, 1, 42, 2**32 - 1, 2**32, 0x0123456789ABCDEF, 2**64 - 1])
@pytest.mark.parametrize("dim", [1, 4, 7, 130])
def test_latent_matches_scalar_reference(seed: int, dim: int) -> None:
    np.testing.assert_array_equal(seeds.latent(seed, dim), _latent_reference(seed, dim))


def test_latent_is_a_prefix_across_dims() -> None:
    long = seeds.latent(12345, 512)
    for dim in (1, 3, 4, 5, 128, 511):
        np.testing.assert_array_equal(seeds.latent(12345, dim), long[:dim])


def test_latents_vectorised_equals_one_by_one() -> None:
    rng = np.random.default_rng(7)
    batch = [int(s) for s in rng.integers(0, 2**63, size=50, dtype=np.int64)] + [0, 2**64 - 1]
    stacked = seeds.latents(batch, 37)
    assert stacked.shape == (len(batch), 37) and stacked.dtype == np.float32
    for row, s in zip(stacked, batch):
        np.testing.assert_array_equal(row, seeds.latent(s, 37))
    np.testing.assert_array_equal(seeds.latents(np.array(batch, dtype=np.uint64), 37), stacked)


@pytest.mark.parametrize("good", [0, 2**64 - 1, np.uint64(2**64 - 1), np.int64(5)])
def test_boundary_seeds_are_valid(good: object) -> None:
    assert seeds.latent(good, 2).shape == (2,)


@pytest.mark.parametrize("bad", [-1, 2**64, 1.0, "3", None, True])
def test_invalid_seeds_are_rejected(bad: object) -> None:
    with pytest.raises(ValueError, match="seed"):
        seeds.latent(bad, 4)
    with pytest.raises(ValueError, match="seed"):
        seeds.latents([1, bad], 4)


def test_negative_seed_in_signed_array_is_rejected() -> None:
    with pytest.raises(ValueError, match="seed"):
        seeds.latents(np.array([3, -1], dtype=np.int64), 4)


def test_latent_statistics_of_100k_samples() -> None:
    values = seeds.latents(np.arange(25_000, dtype=np.uint64), 4).ravel().astype(np.float64)
    assert values.size == 100_000
    # Standard error of the mean is 1/sqrt(1e5) ~ 0.0032; of the std ~ 0.0022. Bounds are ~6 sigma.
    assert abs(values.mean()) < 0.02
    assert abs(values.std() - 1.0) < 0.015
    assert np.isfinite(values).all()
    # A normal has ~68.27 % of its mass within one sigma.
    assert abs(np.mean(np.abs(values) < 1.0) - 0.6827) < 0.01


def test_token_seed_is_sha256_prefix_little_endian() -> None:
    digest = hashlib.sha256(b"artctl-token-v1:my-salt:17").digest()
    assert seeds.token_seed("my-salt", 17) == int.from_bytes(digest[:8], "little")
    assert seeds.token_seed("my-salt", 17) != seeds.token_seed("my-salt", 18)
    assert 0 <= seeds.token_seed("ünïcode salt", 0) < 2**64
    with pytest.raises(ValueError):
        seeds.token_seed("s", -1)


def test_trait_draw_follows_the_definition() -> None:
    values, weights = ["common", "rare", "legendary"], [70, 25, 5]
    for token_id in range(200):
        digest = hashlib.sha256(f"artctl-trait-v1:salt:{token_id}:Background".encode()).digest()
        u = int.from_bytes(digest[:8], "little") / 2**64
        expected = "common" if u < 0.70 else ("rare" if u < 0.95 else "legendary")
        assert seeds.trait_draw("salt", token_id, "Background", values, weights) == expected


def test_trait_draw_frequencies_follow_weights() -> None:
    values, weights = ["a", "b", "c", "d"], [50, 30, 15, 5]
    n = 20_000
    counts = dict.fromkeys(values, 0)
    for token_id in range(n):
        counts[seeds.trait_draw("freq", token_id, "T", values, weights)] += 1
    for value, weight in zip(values, weights):
        p = weight / 100
        sigma = math.sqrt(n * p * (1 - p))
        assert abs(counts[value] - n * p) < 5 * sigma, (value, counts)


def test_trait_draw_zero_weight_never_drawn_and_bad_weights_rejected() -> None:
    for token_id in range(500):
        assert seeds.trait_draw("z", token_id, "T", ["x", "never", "y"], [1, 0, 1]) != "never"
    with pytest.raises(ValueError):
        seeds.trait_draw("z", 0, "T", ["x"], [0])
    with pytest.raises(ValueError):
        seeds.trait_draw("z", 0, "T", ["x", "y"], [1])
    with pytest.raises(ValueError):
        seeds.trait_draw("z", 0, "T", ["x"], [-1])


def test_pixel_sha256_definition() -> None:
    img = (np.arange(2 * 3 * 4) % 256).astype(np.uint8).reshape(2, 3, 4)
    expected = hashlib.sha256(b"artctl-pixels-v1:2x3x4:" + img.tobytes()).hexdigest()
    assert seeds.pixel_sha256(img) == expected
    # Non-contiguous views hash their logical HWC bytes.
    assert seeds.pixel_sha256(np.asfortranarray(img)) == expected
    with pytest.raises(ValueError):
        seeds.pixel_sha256(img.astype(np.float32))
    with pytest.raises(ValueError):
        seeds.pixel_sha256(img[..., 0])


def test_provenance_is_bayc_style() -> None:
    files = [hashlib.sha256(bytes([i])).hexdigest() for i in range(5)]
    expected = hashlib.sha256("".join(files).encode("ascii")).hexdigest()
    assert seeds.provenance(files) == expected
    assert seeds.provenance([f.upper() for f in files]) == expected
    with pytest.raises(ValueError):
        seeds.provenance(["nothex"])


def test_the_documented_golden_values_hold() -> None:
    """docs/seed-contract.md is what other implementers read: its tables must stay true."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "seed-contract.md").read_text()
    rows = [line for line in doc.splitlines() if line.startswith("| ") and line.count("|") == 3]
    checked = 0
    for row in rows:
        left, right = (cell.strip() for cell in row.strip("|").split("|"))
        if not left.isdigit():
            continue
        seed, values = int(left), [float(v) for v in right.split(",")]
        np.testing.assert_array_equal(_latent_reference(seed, 6), np.array(values, dtype=np.float32))
        np.testing.assert_array_equal(seeds.latent(seed, 6), np.array(values, dtype=np.float32))
        checked += 1
    assert checked == 4
    assert 'token_seed("demo-salt", 0) = 1690839173406883232' in doc
    digest = hashlib.sha256(b"artctl-token-v1:demo-salt:0").digest()
    assert int.from_bytes(digest[:8], "little") == 1690839173406883232
    assert seeds.pixel_sha256(np.zeros((2, 2, 3), np.uint8)) in doc
