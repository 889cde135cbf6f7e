"""``python -m cryocurate`` runs the command line."""

from cryocurate.cli.main import main

main()
