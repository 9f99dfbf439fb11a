"""The model: lexical features, the heads and their blend with the neighbours' vote, the similar-ticket index, the
router that ties them together with typed answers, and its MLflow pyfunc face."""
