"""cryocurate: curated, labelled cryo-EM training data, published as a portal.

The package is layered; a module imports only from layers below its own::

    errors, atomic, progress                    foundation
    formats/                                    file formats, nothing else
    catalog/  store/  synth/                    database, data tree, sample jobs
    ingest/                                     job folders → data tree + catalog
    portal                                      a portal root: settings + catalog + store
    cli/  web/                                  thin surfaces over the services
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
