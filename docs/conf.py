"""Sphinx configuration: numpydoc API pages and a sphinx-gallery of examples."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sklearn_diffusion  # noqa: E402

project = "sklearn-diffusion"
author = "sklearn-diffusion developers"
release = version = sklearn_diffusion.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

autosummary_generate = True
autodoc_default_options = {"members": True}
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py", "sg_execution_times.rst"]
templates_path = ["_templates"]
html_theme = "pydata_sphinx_theme"
html_static_path = []
html_title = "sklearn-diffusion"
intersphinx_mapping = {}  # no network at build time

sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    # SKD_DOCS_FAST=1 (CI) runs every example in its fast mode; see README.
    "reset_modules": ("matplotlib",),
    "remove_config_comments": True,
    "download_all_examples": False,
    "within_subsection_order": "FileNameSortKey",
}
if os.environ.get("SKD_DOCS_NO_EXAMPLES"):
    sphinx_gallery_conf["plot_gallery"] = "False"
