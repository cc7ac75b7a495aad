"""``musegen studio``: a local web studio (``pip install 'musegen[studio]'``).

:func:`musegen.studio.app.create_app` builds the ASGI app; the work runs in
a worker process (:mod:`musegen.studio.jobs`).  This package imports
starlette only in :mod:`musegen.studio.app`, so ``musegen --help`` never loads it.
"""
