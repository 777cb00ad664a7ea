"""Alert delivery to street offices: routing, Standard Webhooks signing, durable delivery.

* :mod:`alerts.payload` — which endpoints take which alert events; the versioned payload;
* :mod:`alerts.signing` — Standard Webhooks signatures (sign and verify);
* :mod:`alerts.outbox` — the SQLite outbox (messages, endpoint state, attempts);
* :mod:`alerts.delivery` — feed, per-endpoint workers, publisher; :func:`run_dispatcher`;
* :mod:`alerts.receiver` — the reference receiver a street office can run;
* :mod:`alerts.cli` — ``estate webhooks status|redrive`` and ``estate receiver``.

``docs/webhooks.md`` documents the payload, the headers and every delivery decision.
"""
