"""Tooling around the code location: the ``mlops`` command line, the native stack it starts, the
demo's summary and the scaffold of a new use case. Nothing here is loaded by the code location
(``mlops_assets.definitions``)."""
