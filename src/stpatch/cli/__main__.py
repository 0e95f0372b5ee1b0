"""``python -m stpatch.cli``: the same as the ``stpatch`` command (Lightning's DDP launcher re-runs it so)."""

from stpatch.cli import main

if __name__ == "__main__":
    main()
