"""Helpdesk API clients both sides share: the importer (training) reads history through them, the webhook
connectors (serving) write notes and read a solved ticket's path."""
