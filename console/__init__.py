"""The control-room HTTP API (``/api/v1``), live feed and console page (aiohttp).

Entry points: :func:`console.app.build_app`, :func:`console.app.serve`, and
``console.cli.register`` for ``estate tokens``. See ``docs/api.md`` and ``docs/console.md``.
"""
