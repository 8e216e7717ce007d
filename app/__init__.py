"""The application: the `qas` CLI, the wiring of services onto a bus, replay and reports.

Sits above the services and the library (`core/`); nothing below imports from here.
"""
