"""The researcher API (``quire serve``): FastAPI over the catalog, collections and jobs.
``quire_assets.server`` serves it with the dashboard."""
