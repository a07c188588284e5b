"""Order totals, in Decimal only, rounded half-up to cents."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
# The largest amount stored (``app.db.Money``: NUMERIC(12, 2)) and written (API.md: up to
# ten digits before the point).
MAX_AMOUNT = Decimal("9999999999.99")


def to_cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Totals:
    subtotal: Decimal
    tax: Decimal
    shipping: Decimal
    total: Decimal


def line_total(unit_price: Decimal, quantity: int) -> Decimal:
    return to_cents(unit_price * quantity)


def totals(
    line_totals: Iterable[Decimal], *, tax_rate: Decimal, shipping_flat: Decimal, free_shipping_over: Decimal | None
) -> Totals:
    subtotal = to_cents(sum(line_totals, Decimal("0")))
    tax = to_cents(subtotal * tax_rate)
    free = free_shipping_over is not None and subtotal >= free_shipping_over
    shipping = Decimal("0.00") if free or subtotal == 0 else to_cents(shipping_flat)
    return Totals(subtotal=subtotal, tax=tax, shipping=shipping, total=subtotal + tax + shipping)
