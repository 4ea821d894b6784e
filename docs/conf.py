"""Sphinx configuration of the smart-scan documentation (``bash docs/build.sh`` builds it).

Offline apart from PyPI: no intersphinx, the default theme (alabaster, installed with Sphinx).
References to other packages' types (numpy, torch, bluesky, ophyd, ...) are not resolved, so the
nitpicky build ignores them (``nitpick_ignore_regex``); every name of this package must resolve.
"""

from __future__ import annotations

import inspect
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# numpydoc reads ophyd's Device docstring (a base class) and warns about its "Subscriptions" section.
warnings.filterwarnings("ignore", message="Unknown section Subscriptions", category=UserWarning)

project = "smart-scan"
author = "the smart-scan developers"
copyright = "the smart-scan developers; BSD-3-Clause"
release = version = "0.1.0"

extensions = ["sphinx.ext.autodoc", "numpydoc"]

exclude_patterns = ["_build"]
templates_path: list[str] = []
html_theme = "alabaster"
html_static_path: list[str] = []
html_theme_options = {"page_width": "1100px", "sidebar_width": "240px"}

# autodoc: every public function and class a module defines (its __all__ may leave some out).
autodoc_default_options = {"members": True, "member-order": "bysource", "ignore-module-all": True,
                           "show-inheritance": True}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autoclass_content = "class"
# A method without a docstring of its own (torch's ``forward``, ophyd's ``trigger``) is not listed with
# the docstring of the class it overrides: the reference shows what this package documents.
autodoc_inherit_docstrings = False

# numpydoc: the docstrings' Parameters/Returns sections; no per-class autosummary tables.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

nitpicky = True
# Other packages' names: no intersphinx (offline), so these cannot resolve and are not checked.
nitpick_ignore_regex = [
    (r"py:.*", r"(np|numpy|torch|scipy|sklearn|skimage|matplotlib|bluesky|ophyd|ophyd_async|caproto|tiled|"
               r"event_model|databroker|epics|pathlib|collections|typing|concurrent|threading|subprocess|"
               r"multiprocessing|socket|argparse|os|io|enum|dataclasses|contextlib|asyncio|numbers|types)(\..*)?"),
    (r"py:class", r"Broker"),  # databroker.v1.Broker, imported for type checking only
    (r"py:class", r"(.*\.)?_\w+"),  # a private base class (show-inheritance names it; it has no page)
]

OUR_PACKAGES = ("steering", "plans", "devices", "sim")


def skip_foreign(app, what, name, obj, skip, options):
    """Skip a module's member that another package defines (scipy's ``cKDTree`` imported into
    ``steering.maps``): only this package's functions and classes have pages."""
    if what == "module" and (inspect.isclass(obj) or inspect.isroutine(obj)):
        module = getattr(obj, "__module__", None) or ""
        if module.split(".")[0] not in OUR_PACKAGES:
            return True
    return None


def setup(app):
    """Connect `skip_foreign`."""
    app.connect("autodoc-skip-member", skip_foreign)
