"""Every model, imported once so that ``db.metadata`` (and Alembic) sees the whole schema."""

from app.auth.models import AccountToken, AuthSession
from app.mail.models import OutboxMail
from app.orders.models import IdempotencyKey, Order, OrderEvent, OrderItem, OrderNumberCounter
from app.products.models import Category, Product
from app.products.transfer.models import ProductExport, ProductImport, ProductImportError
from app.uploads.models import Upload
from app.users.models import User

__all__ = [
    "AccountToken",
    "AuthSession",
    "Category",
    "IdempotencyKey",
    "Order",
    "OrderEvent",
    "OrderItem",
    "OrderNumberCounter",
    "OutboxMail",
    "Product",
    "ProductExport",
    "ProductImport",
    "ProductImportError",
    "Upload",
    "User",
]
