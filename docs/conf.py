"""Sphinx configuration of the ketameta documentation (built in CI with -W)."""

from __future__ import annotations

import ketameta

project = "ketameta"
author = "ketameta developers"
copyright = "2026, ketameta developers"
release = ketameta.__version__
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "matplotlib.sphinxext.plot_directive",
    "matplotlib.sphinxext.figmpl_directive",  # plot_srcset
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
myst_enable_extensions = ["dollarmath"]
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
autodoc_typehints = "none"
autodoc_member_order = "bysource"
plot_include_source = True
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 90)]
plot_srcset = ["2x"]  # a sharp image on high-resolution screens
# text readable when a figure is shown at the width of the page (figures are 6-9 inches
# wide, shown at about 8 inches): 12 pt instead of matplotlib's 10
plot_rcparams = {"font.size": 12}
html_theme = "pydata_sphinx_theme"
html_theme_options = {"navigation_with_keys": False}
html_title = "ketameta"
suppress_warnings = ["ref.citation"]  # module docstrings list their whole bibliography
