"""Open the app in the default browser once the server answers (used by `make run`)."""

from __future__ import annotations

import sys
import time
import urllib.request
import webbrowser


def main(url: str) -> None:
    for _ in range(120):
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1):  # noqa: S310
                webbrowser.open(url)  # does nothing where no browser or display exists
                return
        except OSError:
            time.sleep(0.5)


if __name__ == "__main__":
    main(sys.argv[1])
