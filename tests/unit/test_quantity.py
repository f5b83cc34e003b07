"""Quantities: Kubernetes quantity text to bytes, and bytes as people read them."""

from __future__ import annotations

from typing import Any

import pytest

from agent.quantity import format_bytes, parse_quantity

Gi, Mi, Ki = 1 << 30, 1 << 20, 1 << 10


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("42", 42),
        ("100Gi", 100 * Gi),
        ("104845292Ki", 104845292 * Ki),
        ("500M", 500_000_000),
        ("1.5Ti", 1536 * Gi),
        ("1.5Gi", 1536 * Mi),
        ("200Mi", 200 * Mi),
        ("1k", 1000),
        ("2Pi", 2 << 50),
        ("3G", 3_000_000_000),
        ("1T", 10**12),
        ("1E", 10**18),
        ("1Ei", 1 << 60),
        ("1e3", 1000),
        ("1E3", 1000),
        ("2.5e2", 250),
        ("1500m", 2),
        ("1m", 1),
        ("0.5", 1),
        (".5Ki", 512),
        ("1.", 1),
        (" 10Mi ", 10 * Mi),
        (7, 7),
    ],
)
def test_parse_quantity(text: str | int, expected: int) -> None:
    assert parse_quantity(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Gi",
        "10GB",
        "10gi",
        "10 Gi",
        "-1",
        "-1Gi",
        "+1",
        "1.2.3",
        "0x10",
        "1e",
        "1Gi5",
        "nan",
        "9Ei",
        "1e30",
        True,
        None,
        1.5,
        -3,
    ],
)
def test_parse_quantity_rejects(text: Any) -> None:
    with pytest.raises(ValueError):
        parse_quantity(text)



@pytest.mark.parametrize(
    ("n", "text"),
    [
        (6 * Gi, "6.0 GiB"),
        (4509715660, "4.2 GiB"),
        (200 * Mi, "200.0 MiB"),
        (1536 * Gi, "1.5 TiB"),
        (3 << 50, "3.0 PiB"),
        (1536, "1.5 KiB"),
        (1023, "1023 B"),
        (0, "0 B"),
        (-Gi, "-1.0 GiB"),
    ],
)
def test_format_bytes(n: int, text: str) -> None:
    assert format_bytes(n) == text
