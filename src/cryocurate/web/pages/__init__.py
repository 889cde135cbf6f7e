"""The portal's pages, one module per page family, each a router of thin views.

A view gathers one context (plain data from catalog queries) and hands it to
:func:`render`, which answers HTML (Jinja2, over ``templates/base.html``) or, when the URL
ends in ``.json`` or the client asks for ``application/json``, the same context as JSON. So
every page answers as JSON, and the page and its JSON cannot drift apart.
"""
