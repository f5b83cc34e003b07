"""Byte quantities: Kubernetes quantity text to bytes, and bytes (and seconds) to text for people.

`parse_quantity` reads what the API server and administrators write ("100Gi", "500M",
"104845292Ki"): the settings' sizes and disk budget, and Nodes' `ephemeral-storage`.
`format_bytes` is the one way the agent shows a size to a person ("6.0 GiB"), and
`format_duration` a number of seconds ("6m3s").

What this module is not: it does not import the Kubernetes client (whose
`kubernetes.utils.quantity` parses the same grammar), so that the pure modules can use it.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

__all__ = ["GiB", "KiB", "MiB", "format_bytes", "format_duration", "parse_quantity"]

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30

# The grammar of kubernetes/kubernetes staging/src/k8s.io/apimachinery/pkg/api/resource/quantity.go
# (`<quantity> ::= <signedNumber><suffix>`), without the sign: a size is never negative.
_QUANTITY = re.compile(
    r"(?P<number>\d+(?:\.\d*)?|\.\d+)"
    r"(?:(?P<exponent>[eE][+-]?\d+)|(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E))?"
)
_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_INT64_MAX = (1 << 63) - 1


def parse_quantity(text: str | int) -> int:
    """A Kubernetes quantity of bytes as an int: "100Gi", "104845292Ki", "500M", "1.5Ti",
    "1e3", "1500m", "42" (or an int). A fraction of a byte is rounded up, as Kubernetes'
    `Quantity.Value()` does. Raises ValueError for anything else, including negative values
    and values beyond int64."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"not a size: {text!r} is negative")
        return text
    if not isinstance(text, str):
        raise ValueError(f"not a Kubernetes quantity: {text!r} ({type(text).__name__})")
    match = _QUANTITY.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"not a Kubernetes quantity: {text!r} (expected a number with an optional "
            "suffix Ki, Mi, Gi, Ti, Pi, k, M, G, T, P, e.g. '100Gi' or '500M')"
        )
    try:
        number = Decimal(match["number"])
        if match["exponent"]:
            number = number.scaleb(int(match["exponent"][1:]))
        value = number * _SUFFIXES[match["suffix"] or ""]
    except (InvalidOperation, OverflowError, ValueError) as e:
        raise ValueError(f"not a Kubernetes quantity: {text!r} ({e})") from None
    if value > _INT64_MAX:
        raise ValueError(f"quantity {text!r} is too large")
    return math.ceil(value)


_UNITS = (("PiB", 1 << 50), ("TiB", 1 << 40), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB))


def format_bytes(n: int) -> str:
    """Bytes for a person, in the largest binary unit that keeps a digit before the point:
    6442450944 -> "6.0 GiB", 4509715660 -> "4.2 GiB", 209715200 -> "200.0 MiB",
    512 -> "512 B", -1073741824 -> "-1.0 GiB"."""
    for unit, scale in _UNITS:
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def format_duration(seconds: float) -> str:
    """Seconds for a person, to the second above a minute and in two units at most:
    0.3137 -> "0.31s", 7.26 -> "7.3s", 363 -> "6m3s", 4603 -> "1h16m", 93784 -> "1d2h"."""
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds < 1:
        return f"{seconds:.2f}s"
    if seconds < 59.95:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    return f"{minutes}m{secs}s"
