"""A parse worker's process: ``python -P -m watcher.reading.worker FD MODULE:QUALNAME [--fetch]``.

`ProcessReader` starts one per worker. FD is the worker's end of its socket pair, kept open
across exec; MODULE:QUALNAME names the parse function; ``--fetch`` makes a worker that also
fetches pages (`watcher.reading.fetching`). Only what fetching and parsing need is imported here,
not the parent's `__main__` (the command line, the bot, the notifiers).
"""

from __future__ import annotations

import socket
import sys

from watcher.reading.pool import find_parse, serve


def main(argv: list[str]) -> None:
    fd, name, *flags = argv
    serve(socket.socket(fileno=int(fd)), find_parse(name), fetching="--fetch" in flags)


if __name__ == "__main__":
    main(sys.argv[1:])
