"""FiftyOne datasets that persist (never replaced without ``overwrite``) and the App, on localhost by default."""
from __future__ import annotations

import logging
import re

import fiftyone as fo

from lightning_dlc.project.errors import ProjectError

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "localhost"  # the App serves datasets (and images) to whoever reaches it: local only by default
DEFAULT_PORT = 5151

__all__ = ["DEFAULT_ADDRESS", "DEFAULT_PORT", "field_name", "launch_app", "new_dataset"]


def field_name(text: str) -> str:
    """A FiftyOne field name from any text: letters, digits and ``_`` only, not starting with a digit or ``_``."""
    name = re.sub(r"[^0-9A-Za-z_]+", "_", str(text)).strip("_")
    return name if name and name[0].isalpha() else f"f_{name}"


def new_dataset(name: str, overwrite: bool = False, persistent: bool = True, media_type: str | None = None
                ) -> fo.Dataset:
    """An empty dataset called ``name`` in FiftyOne's database; an existing one only goes with ``overwrite``."""
    if fo.dataset_exists(name):
        if not overwrite:
            raise ProjectError(name, "a FiftyOne dataset of this name exists; pass overwrite=true to rebuild it "
                                     "or name=<another name> (fiftyone datasets list shows them)")
        log.info("replacing FiftyOne dataset %s", name)
        fo.delete_dataset(name)
    dataset = fo.Dataset(name)
    dataset.persistent = persistent
    if media_type is not None:
        dataset.media_type = media_type
    return dataset


def launch_app(dataset: fo.Dataset, address: str = DEFAULT_ADDRESS, port: int = DEFAULT_PORT,
               wait: bool = False) -> fo.Session:
    """Open ``dataset`` in the FiftyOne App at ``http://address:port`` and print the URL.

    No browser is started (``remote``): open the URL, or forward the port from a server
    (``ssh -L 5151:localhost:5151 host``). ``wait``: block until the App's tabs close or Ctrl-C.
    """
    if address not in ("localhost", "127.0.0.1", "::1"):
        log.warning("the FiftyOne App listens on %s: anyone who reaches this machine on port %d sees the "
                    "dataset and its images", address, port)
    session = fo.launch_app(dataset, address=address, port=int(port), remote=True, auto=False)
    print(f"FiftyOne App: {session.url}  (dataset {dataset.name})", flush=True)
    if wait:
        try:
            session.wait(-1)
        except KeyboardInterrupt:
            pass
        finally:
            session.close()
    return session
