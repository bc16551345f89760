"""routerkit: assemble, flash, verify and report on engineering-sample routers.

The package is a library first; ``toolkit.cli`` is a thin layer on top. Heavy dependencies
(paramiko, fabric, tuf, Pillow) are imported inside the functions that need them so that
``routerkit --help`` stays fast.
"""

__version__ = "0.1.0"
