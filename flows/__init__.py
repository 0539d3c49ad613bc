"""Prefect flows and the `genloop` command: thin wrappers over components/."""
