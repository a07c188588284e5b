"""The catalog domain: products and categories."""
