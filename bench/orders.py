"""Order placement: ``POST /api/v1/orders`` from distinct customers, one line each.

The orders are spread over ``ORDER_PRODUCTS`` products with plenty of stock and over
``CUSTOMERS`` customers, so that rows are contended as in a sale, not serialised on one.
"""

from __future__ import annotations

import json

from bench import fixtures, harness
from bench.harness import Request, Row

ADDRESS = {"name": "Bench", "line1": "1 Loop Rd", "city": "Localhost", "postal_code": "127", "country": "US"}


def run(ctx: harness.Context) -> list[Row]:
    data = fixtures.catalog(ctx)
    requests = []
    for n in range(len(data.customer_tokens) * len(data.order_product_ids) // 10):
        body = {
            "items": [{"product_id": data.order_product_ids[n % len(data.order_product_ids)], "quantity": 1}],
            "shipping_address": ADDRESS,
        }
        token = data.customer_tokens[n % len(data.customer_tokens)]
        requests.append(Request("POST", "/api/v1/orders", f"Bearer {token}", json.dumps(body)))
    path = harness.write_requests("orders", requests)
    with ctx.app(name="app-orders") as port:
        result = harness.wrk(f"http://{harness.HOST}:{port}/", requests=path, label="orders")
    return [
        harness.row_from(
            "orders",
            "POST /orders (distinct customers, 1 line)",
            result,
            ratio_of=None,  # a write with its transaction: no ratio to a hello means anything
            min_rate=300.0,
            max_p99_ms=100.0,
        )
    ]
