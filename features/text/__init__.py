"""Ticket text: cleaning (mojibake, quoted replies, signatures) and privacy (masking names, contacts, credentials)."""
