"""The approval server (``runner server``): an ASGI app on FastAPI with SQLAlchemy storage.

Installed with the ``server`` extra, so the runner in CI jobs stays light; nothing outside this
package imports it.
"""
