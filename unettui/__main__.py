"""`python -m unettui` is the `unettui` command."""

from .cli.app import main

main()
