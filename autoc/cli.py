"""Command line: thin subcommands over the library. User errors print one line and exit 2."""
from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

from autoc.commands import register_all
from autoc.errors import AutocError, mask_passwords


class OneLineErrorParser(argparse.ArgumentParser):
    """A usage error is one line naming the command and where its options are listed, not the
    whole usage block. Subcommand parsers inherit it (add_subparsers uses the parent's class)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="autoc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    register_all(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except AutocError as exc:
        print(f"autoc: error: {mask_passwords(str(exc))}", file=sys.stderr)  # whatever message quotes a URL
        return exc.exit_code
    except BrokenPipeError:
        # `autoc show ... | head` closed the pipe: not an error of ours; keep stderr quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("autoc: interrupted; completed work is stored, re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
