"""Who may do what with orders: decorators for the views, ownership policies for services."""

from __future__ import annotations

from app.orders.models import Order
from app.permissions import Principal, has_permission, require_permission
from app.ratelimits import order_placement_limit

can_create = require_permission("orders:create")
# POST /orders, per customer: placing holds stock, so it has its own budget.
limit_placement = order_placement_limit()
can_read = require_permission("orders:read")
can_fulfil = require_permission("orders:fulfil")


def is_owner(principal: Principal, order: Order) -> bool:
    return order.user_id == principal.id


def can_view(principal: Principal, order: Order) -> bool:
    """Owners and staff; anyone else must not learn that the order exists (404)."""
    return is_owner(principal, order) or has_permission(principal, "orders:read_all")


def sees_all_orders(principal: Principal) -> bool:
    return has_permission(principal, "orders:read_all")


def can_pay(principal: Principal, order: Order) -> bool:
    return is_owner(principal, order)


def can_cancel(principal: Principal, order: Order) -> bool:
    return (is_owner(principal, order) and has_permission(principal, "orders:cancel")) or has_permission(
        principal, "orders:fulfil"
    )
