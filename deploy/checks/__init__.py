"""Offline checks for deploy/: render with kubectl kustomize, schema-validate, and rules schemas miss.

Run them all with `python -m deploy.checks` from the repository root; tests/test_deploy.py runs the
same functions under pytest.
"""
