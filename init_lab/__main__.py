"""``python -m init_lab``: the initlab command line, for when the ``initlab`` script is not on PATH."""

from init_lab.cli import main

if __name__ == "__main__":
    main()
