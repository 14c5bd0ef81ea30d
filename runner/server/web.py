"""The approvers' web page (with the approvers' web page issue); for now the API only."""

from __future__ import annotations

from fastapi import FastAPI

from runner.server.app import create_app
from runner.server.storage import Store


def create_full_app(store: Store) -> FastAPI:
    return create_app(store)
