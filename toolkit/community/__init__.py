"""Community: the session record turned into build logs and bug reports, privately.

``buildlog`` and ``bugreport`` compose posts from a journal, ``redact`` scrubs them, the
``outbox`` delivers them exactly once through a ``publishers`` backend, ``server`` runs the
embedded Roundup tracker, and ``tokens`` keeps credentials in the system keyring.
"""
