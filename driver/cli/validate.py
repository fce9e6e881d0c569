"""nsvirt-xml-validate FILE...: check domain files like libvirt's virt-xml-validate.

Prints `FILE validates` for each good file, or `error: FILE:LINE: ...` on
stderr for a bad one; exits 1 if any file failed.
"""

from __future__ import annotations

import argparse
import sys

from nsvirt.driver import domxml
from nsvirt.driver.errors import DriverError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="nsvirt-xml-validate",
        description="Validate nsvirt/libvirt <domain type='lxc'> files against nsvirt's schema.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE")
    args = parser.parse_args(argv)
    status = 0
    for name in args.files:
        try:
            domxml.load_file(name)
        except DriverError as e:  # XMLError (FILE:LINE: reason) or FileError
            print(f"error: {e}", file=sys.stderr)
            status = 1
        else:
            print(f"{name} validates")
    return status


if __name__ == "__main__":
    sys.exit(main())
