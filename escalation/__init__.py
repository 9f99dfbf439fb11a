"""The `escalation` command line: the one place that wires training and serving together."""
