"""Training side: load and validate exports, fit the router, evaluate it, log and register it in MLflow."""
