"""Where the portal's files live, and how they change without ever being half-written.

:mod:`.layout` names every path of the data tree (the CryoET Data Portal's folder layout);
:mod:`.tree` swaps whole folders in and out atomically. Nothing here knows the database.
"""
