"""The ceiling: a bare Flask app answering ``{"ok": true}``, nothing else."""

from __future__ import annotations

from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello() -> dict[str, bool]:
    return {"ok": True}
