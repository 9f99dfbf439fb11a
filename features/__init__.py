"""What training and serving share: `settings` and `config` (typed), `data` (reading tickets), `text` (cleaning,
privacy), `encoders` (texts to embeddings) and `model` (features, heads, index, router, pyfunc)."""
