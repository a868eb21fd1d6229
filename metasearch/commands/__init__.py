"""CLI command bodies; registered on the typer app in :mod:`metasearch.cli`."""
