"""The ``cryocurate`` command line: thin typer commands over the library's services.

Each command parses its options, calls one service, and renders the result; errors from the
:mod:`cryocurate.errors` tree become one ``Error: …`` line and an exit status (see
:func:`cryocurate.cli.main.main`), never a traceback.
"""
