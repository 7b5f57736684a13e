"""``python -m arrowlog``: the same command as the ``arrowlog`` console script."""

from arrowlog.cli import main

if __name__ == "__main__":
    main(prog_name="arrowlog")
