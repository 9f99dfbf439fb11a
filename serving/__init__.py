"""Serving side: the FastAPI app, its schemas and the champion loader. It never imports `training`."""
