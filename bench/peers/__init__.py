"""The reference points every catalog figure is compared with, served by the same gunicorn."""
