"""The ``metasearch`` command line (entry point: :func:`metasearch.cli.app.main`)."""
