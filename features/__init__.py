"""What training and serving share: settings, config, cleaning, embedding, features and the model artefact."""
