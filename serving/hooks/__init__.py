"""Helpdesk connectors: webhooks in, internal notes out, outcomes back as feedback (docs/helpdesks.md)."""
