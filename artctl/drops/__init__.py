"""Drops: mint a collection, join its shards, verify it, all re-derivable from config and model.

render (where pixels come from) -> tokens (a token's entry and files) -> journal (crash safety) ->
files (the drop-level files) -> mint / merge / verify. Each module uses only the public names of
the others.
"""


class MintError(RuntimeError):
    """The drop could not be rendered, joined or checked."""
