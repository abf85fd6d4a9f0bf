"""``python -m flashdiff``: the reconstruction job (Hydra)."""

from flashdiff.cli import main

if __name__ == "__main__":
    main()
