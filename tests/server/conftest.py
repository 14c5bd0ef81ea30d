"""The approval server's tests' fixtures (``helpers.server_helpers``): a real store on SQLite and
on PostgreSQL, and a real uvicorn serving the API on loopback."""

from helpers.server_helpers import (
    database_url,
    expect_error,
    fresh_postgres_url,
    make_request,
    module_store,
    module_url,
    people,
    postgres_admin_url,
    postgres_module_url,
    server,
    store,
    stub,
)

__all__ = [
    "database_url",
    "expect_error",
    "fresh_postgres_url",
    "make_request",
    "module_store",
    "module_url",
    "people",
    "postgres_admin_url",
    "postgres_module_url",
    "server",
    "store",
    "stub",
]
