"""Client libraries imported on first use, not when a module that may use them is imported.

The kubernetes package takes ~0.7 s to import (its config loader pulls in google-auth,
oauthlib, websocket-client, ...), and the admin's imports reach the kube adapter: every
`manage.py` command, even `help`, paid for it. `lazy("kubernetes.client")` stands for that
module and imports it at the first attribute read (`client.CoreV1Api`, and in an `except`
clause `rest.ApiException`, which is read only when an exception reaches it).

Written here because importlib.util.LazyLoader cannot defer a submodule: finding
`kubernetes.client` imports the `kubernetes` package, which imports everything.
"""

import importlib


class LazyModule:
    def __init__(self, name):
        self._lazy_name = name

    def __getattr__(self, attr):
        if attr.startswith("__"):  # copy, pickle, inspect: not the module's
            raise AttributeError(attr)
        return getattr(importlib.import_module(self._lazy_name), attr)

    def __repr__(self):
        return f"<lazy module {self._lazy_name}>"


def lazy(name):
    return LazyModule(name)
