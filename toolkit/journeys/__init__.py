"""Journeys: one module per user journey (assemble, flash, verify, share, bug).

A journey orchestrates the domain and protocol layers for one goal, records every step in the
session journal and reports progress to a :class:`toolkit.events.Reporter`. It never prints.
Transports, publishers and targets are injected, so the same journey runs against the virtual
sample, a fake, or a real bench.
"""
