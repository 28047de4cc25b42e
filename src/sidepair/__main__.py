"""Allows ``python -m sidepair`` (and ``torchrun -m sidepair``)."""

from sidepair.cli import main

if __name__ == "__main__":
    main()
