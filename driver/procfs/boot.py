"""Start the /proc server in a bare interpreter: `python -I -S boot.py BASE`
(as supervisor/boot.py: nsvirt.driver importable from the directory above, no site).
A process of its own, not a fork of the supervisor that needed it first: its command
line says what it is, and it holds nothing of that supervisor's."""

import os
import sys
import types

_driver_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _name, _path in (("nsvirt", []), ("nsvirt.driver", [_driver_dir])):
    if _name not in sys.modules:
        _module = types.ModuleType(_name)
        _module.__path__ = _path  # a package: its submodules load from _path
        sys.modules[_name] = _module

from nsvirt.driver.procfs.server import main  # noqa: E402

main(sys.argv[1])
