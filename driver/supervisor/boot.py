"""Start the supervisor in a bare interpreter: `python -I -S boot.py ARGS`.

Without site (-S) the interpreter skips site-packages, .pth files and the
editable-install finder: tens of milliseconds and megabytes per container. The
supervisor needs only the standard library and nsvirt.driver, whose directory
is the one above this file's; this makes `nsvirt.driver` importable from there
without running the client's package __init__.
"""

import os
import sys
import types

_driver_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _name, _path in (("nsvirt", []), ("nsvirt.driver", [_driver_dir])):
    if _name not in sys.modules:
        _module = types.ModuleType(_name)
        _module.__path__ = _path  # a package: its submodules load from _path
        sys.modules[_name] = _module

from nsvirt.driver.supervisor.__main__ import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
