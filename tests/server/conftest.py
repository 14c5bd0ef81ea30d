"""The approval server's tests' fixtures (``helpers.server_helpers``): a real store on SQLite and
on PostgreSQL, and a real uvicorn serving the API on loopback; and (``helpers.server_e2e``)
`runner server` in a subprocess with a workspace waiting on it."""

from helpers.server_e2e import module_world, shared_world, world
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
    "module_world",
    "people",
    "postgres_admin_url",
    "postgres_module_url",
    "server",
    "shared_world",
    "store",
    "stub",
    "world",
]
