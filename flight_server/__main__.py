"""``python -m flight_server``: another name for ``arrowlog serve``, with the same arguments.

    python -m flight_server --data-dir ./data --flight-port 8815 --http-port 8080

Flight and HTTP over one data directory, in one process; ``arrowlog serve --help`` lists
the arguments and arrowlog/_serve.py describes the start and the graceful stop. Nothing
here may differ from ``arrowlog serve``: it is the same command.
"""

from __future__ import annotations

import sys

from arrowlog.cli import main

if __name__ == "__main__":
    # prog_name: the usage and error lines name the command this is.
    main(["serve", *sys.argv[1:]], prog_name="arrowlog")
