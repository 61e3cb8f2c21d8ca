"""Which node holds a collection, when one node is not enough: rendezvous hashing on the name.

Collections are spread over the pods of a StatefulSet (``dedup-0``, ``dedup-1``, ...) by name; the
*client* routes each call to the owner, so there is no proxy hop and every call for one collection
reaches the one process holding its writer lock. Owner = the address with the highest
``hash(address, name)`` (highest-random-weight, a form of consistent hashing): it needs no ring
state, and adding a node moves only the ~1/(n+1) of collections the new node wins; removing a node
moves only that node's collections. Moving a collection's data is an operator's job (snapshot on
the old owner, copy the folder, start the new owner); the server refuses names it does not own (see
``DedupSettings.shard_addresses``), so a client with a stale node list fails loudly.

Pure logic, no grpc: the typed client and the server both use it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from instructforge.runtime.errors import FailedPrecondition, InvalidArgument


def _weight(address: str, name: str) -> int:
    digest = hashlib.blake2b(f"{address}\x00{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class Router:
    """Maps collection names to node addresses (the same list, in any order, on every client)."""

    def __init__(self, addresses: Sequence[str]):
        if not addresses:
            raise InvalidArgument("needs at least one address", field="addresses")
        if len(set(addresses)) != len(addresses):
            raise InvalidArgument("addresses must be distinct", field="addresses")
        self.addresses = tuple(addresses)

    def owner(self, name: str) -> str:
        return max(self.addresses, key=lambda a: (_weight(a, name), a))

    def check_owner(self, name: str, me: str) -> None:
        """Raise unless ``me`` owns ``name``; the error names the owner."""
        owner = self.owner(name)
        if owner != me:
            raise FailedPrecondition(
                f"collection {name!r} belongs to dedup node {owner}, not {me}; route calls by collection name",
                reason="WRONG_SHARD",
                metadata={"owner": owner},
            )
