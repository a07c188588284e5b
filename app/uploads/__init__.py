"""Uploads: files in (through the API or straight to storage), sniffed, re-encoded, served safely."""
