"""Test-support helpers shared by tests, e2e tests and benchmarks.

Import the helpers from their modules (e.g. ``tests.support.openai_server``); this
package deliberately re-exports nothing so that ``python -m tests.support.<module>``
does not import the module twice.
"""
