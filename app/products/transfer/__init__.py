"""Bulk product imports and exports (the ``imports`` queue), in the import file format."""
