"""/orders: placing, reading and fulfilling orders."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from flask import Response, jsonify
from flask.views import MethodView

from app.api import Blueprint
from app.orders import placing, service
from app.orders.models import Order, OrderEvent
from app.orders.permissions import can_create, can_fulfil, can_read, limit_placement
from app.orders.schemas import (
    CancelSchema,
    OrderCreateHeadersSchema,
    OrderCreateSchema,
    OrderEventSchema,
    OrderQueryArgsSchema,
    OrderSchema,
    ShipSchema,
)
from app.pagination import Page
from app.permissions import current_principal

blp = Blueprint("orders", __name__, url_prefix="/api/v1/orders", description="Orders and their fulfilment")

CREATED_HEADERS = {
    "Idempotent-Replayed": {
        "description": "true when this is the stored response of an earlier request with the same key",
        "schema": {"type": "string", "enum": ["true"]},
    },
}


@blp.route("")
class Orders(MethodView):
    @can_read
    @blp.arguments(OrderQueryArgsSchema, location="query")
    @blp.response(200, OrderSchema(many=True))
    @blp.doc(operationId="list_orders")
    def get(self, args: dict[str, Any]) -> Page[Order]:
        """Your orders (staff: everyone's, filterable by user_id)."""
        return service.list_(principal=current_principal(), args=args)

    @can_create
    @limit_placement
    @blp.arguments(OrderCreateHeadersSchema, location="headers")
    @blp.arguments(OrderCreateSchema)
    @blp.response(201, OrderSchema, headers=CREATED_HEADERS)
    @blp.alt_response(
        409,
        response="CONFLICT",
        description="INSUFFICIENT_STOCK, IDEMPOTENCY_CONFLICT, or CONFLICT: ORDER_MAX_PENDING unpaid orders already",
    )
    @blp.doc(operationId="place_order")
    def post(self, headers: dict[str, str], data: dict[str, Any]) -> tuple[Order, int, dict[str, str]] | Response:
        """Place an order; prices come from the catalog."""
        placed = placing.place_order(
            customer=current_principal(), data=data, idempotency_key=headers.get("idempotency_key")
        )
        if placed.replay is not None:
            response = jsonify(placed.replay.body)
            response.status_code = placed.replay.status
            response.headers.update(placed.replay.headers)
            response.headers["Idempotent-Replayed"] = "true"
            return response
        assert placed.order is not None
        return placed.order, 201, {"Location": placing.location_of(placed.order.id)}


@blp.route("/<uuid:order_id>")
class OrderItem(MethodView):
    @can_read
    @blp.response(200, OrderSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.doc(operationId="get_order")
    def get(self, order_id: uuid.UUID) -> Order:
        """One order (its customer or staff)."""
        return service.get(principal=current_principal(), order_id=order_id)


@blp.route("/<uuid:order_id>/events")
class OrderEvents(MethodView):
    @can_read
    @blp.response(200, OrderEventSchema(many=True))
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.doc(operationId="list_order_events")
    def get(self, order_id: uuid.UUID) -> Sequence[OrderEvent]:
        """The order's status history."""
        return service.events(principal=current_principal(), order_id=order_id)


@blp.route("/<uuid:order_id>/pay", methods=["POST"])
@can_read
@blp.response(200, OrderSchema)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT", description="INVALID_STATE: not allowed from the current status")
@blp.doc(operationId="pay_order")
def pay(order_id: uuid.UUID) -> Order:
    """Pay for a pending order (simulated; a payment provider plugs in here)."""
    return service.pay(principal=current_principal(), order_id=order_id)


@blp.route("/<uuid:order_id>/cancel", methods=["POST"])
@can_read
@blp.arguments(CancelSchema, required=False)
@blp.response(200, OrderSchema)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT", description="INVALID_STATE: not allowed from the current status")
@blp.doc(operationId="cancel_order")
def cancel(data: dict[str, Any], order_id: uuid.UUID) -> Order:
    """Cancel a pending or paid order; its stock is restored and a payment refunded."""
    return service.cancel(principal=current_principal(), order_id=order_id, reason=data["reason"])


@blp.route("/<uuid:order_id>/ship", methods=["POST"])
@can_fulfil
@blp.arguments(ShipSchema, required=False)
@blp.response(200, OrderSchema)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT", description="INVALID_STATE: not allowed from the current status")
@blp.doc(operationId="ship_order")
def ship(data: dict[str, Any], order_id: uuid.UUID) -> Order:
    """Mark a paid order shipped (staff)."""
    return service.ship(principal=current_principal(), order_id=order_id, tracking_number=data["tracking_number"])


@blp.route("/<uuid:order_id>/deliver", methods=["POST"])
@can_fulfil
@blp.response(200, OrderSchema)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT", description="INVALID_STATE: not allowed from the current status")
@blp.doc(operationId="deliver_order")
def deliver(order_id: uuid.UUID) -> Order:
    """Mark a shipped order delivered (staff)."""
    return service.deliver(principal=current_principal(), order_id=order_id)
