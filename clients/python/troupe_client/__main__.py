"""Command line: `python -m troupe_client [--url URL] submit TEXT [--wait] | job ID`."""

import argparse
import json
import os
import sys
from typing import List, Optional

from .client import DEFAULT_URL, Client
from .errors import TroupeError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m troupe_client", description=__doc__)
    p.add_argument(
        "--url",
        default=os.environ.get("TROUPE_URL") or DEFAULT_URL,
        help="edge base URL (default: $TROUPE_URL or %s)" % DEFAULT_URL,
    )
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("submit", help="submit a job")
    s.add_argument("text")
    s.add_argument("--wait", action="store_true", help="wait for the job to finish")
    j = sub.add_parser("job", help="show a job")
    j.add_argument("id")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)  # exits 2 on usage errors
    client = Client(args.url)
    try:
        if args.command == "submit":
            job = client.submit(args.text, wait=args.wait)
        else:
            job = client.job(args.id)
    except TroupeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    json.dump(job.to_dict(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
