"""``python -m nasseg.serving.launch serve ...``: BentoML's ``bentoml serve`` with its process manager's
control endpoints on Unix sockets in a private folder, so the HTTP port is the only TCP port.

``bentoml serve`` runs its workers under circus, whose arbiter binds a ZMQ controller and a pub/sub
endpoint on ``tcp://127.0.0.1:<random port>`` with no authentication: any local user could ask it
to start a command (``add``) or stop the service (``quit``). BentoML 1.4 has no option for it, so
this launcher replaces ``bentoml._internal.utils.circus.create_standalone_arbiter`` (looked up at
call time by ``_bentoml_impl.server.serving.serve_http``) with one that binds both endpoints as
``ipc://`` sockets inside a ``mkdtemp`` folder (mode 0700: only the server's user can reach them),
removed when the arbiter stops. Everything else is BentoML's own command line.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

CONTROL_FOLDER_PREFIX = "nasseg-circus-"


def private_endpoints(folder: Path) -> dict[str, str]:
    """The arbiter's controller and pub/sub endpoints as Unix sockets in ``folder``."""
    return {"endpoint": f"ipc://{folder / 'control.sock'}", "pubsub_endpoint": f"ipc://{folder / 'pubsub.sock'}"}


def install_private_arbiter() -> None:
    """Make BentoML's arbiter factory bind its endpoints in a private 0700 folder."""
    from bentoml._internal.utils import circus as bentoml_circus

    def create_private_arbiter(watchers: list[Any], *, threaded: bool = False, **kwargs: Any) -> Any:
        folder = Path(tempfile.mkdtemp(prefix=CONTROL_FOLDER_PREFIX))  # created 0700
        os.chmod(folder, 0o700)
        arbiter_cls = bentoml_circus.ThreadedArbiter if threaded else bentoml_circus.Arbiter
        arbiter = arbiter_cls(watchers, **private_endpoints(folder), check_delay=kwargs.pop("check_delay", 10),
                              **kwargs)  # fmt: skip
        arbiter.exit_stack.callback(shutil.rmtree, folder, ignore_errors=True)
        return arbiter

    bentoml_circus.create_standalone_arbiter = create_private_arbiter


def main(argv: list[str] | None = None) -> None:
    """Run BentoML's CLI (``argv``, default ``sys.argv[1:]``) with the private arbiter installed."""
    install_private_arbiter()
    from bentoml_cli.cli import cli

    cli(args=list(sys.argv[1:] if argv is None else argv), prog_name="bentoml")


if __name__ == "__main__":
    main()
