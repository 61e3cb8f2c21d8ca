"""A dedup client over several nodes: each call goes to the node that owns its collection.

Wraps one typed ``DedupClient`` per node address and routes by collection name with
:class:`routing.Router`; ``ListCollections`` asks every node and merges the pages by name. Give
every client the same address list (the StatefulSet's pod DNS names, e.g.
``dedup-0.dedup.iforge.svc:50052``), in any order. The clients' package may adopt this class; it
lives with the service until then because the service defines the routing rule.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Self

from instructforge.client import DedupClient
from instructforge.dedup.v1 import dedup_pb2 as pb

from .routing import Router


class ShardedDedupClient:
    def __init__(self, clients: dict[str, DedupClient]):
        self.clients = clients
        self.router = Router(list(clients))

    @classmethod
    def connect(cls, addresses: Sequence[str], **kwargs: Any) -> ShardedDedupClient:
        """One ``DedupClient.connect(address, **kwargs)`` per node."""
        return cls({a: DedupClient.connect(a, **kwargs) for a in addresses})

    def node(self, collection: str) -> DedupClient:
        return self.clients[self.router.owner(collection)]

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.clients.values()))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def create_collection(self, request: pb.CreateCollectionRequest, **kw) -> pb.CreateCollectionResponse:
        return await self.node(request.name).create_collection(request, **kw)

    async def get_collection(self, request: pb.GetCollectionRequest, **kw) -> pb.GetCollectionResponse:
        return await self.node(request.name).get_collection(request, **kw)

    async def delete_collection(self, request: pb.DeleteCollectionRequest, **kw) -> pb.DeleteCollectionResponse:
        return await self.node(request.name).delete_collection(request, **kw)

    async def snapshot_collection(self, request: pb.SnapshotCollectionRequest, **kw):
        return await self.node(request.name).snapshot_collection(request, **kw)

    async def check_and_insert(self, request: pb.CheckAndInsertRequest, **kw) -> pb.CheckAndInsertResponse:
        return await self.node(request.collection).check_and_insert(request, **kw)

    async def check(self, request: pb.CheckRequest, **kw) -> pb.CheckResponse:
        return await self.node(request.collection).check(request, **kw)

    async def insert(self, request: pb.InsertRequest, **kw) -> pb.InsertResponse:
        return await self.node(request.collection).insert(request, **kw)

    async def search(self, request: pb.SearchRequest, **kw) -> pb.SearchResponse:
        return await self.node(request.collection).search(request, **kw)

    async def list_collections(self, request: pb.ListCollectionsRequest, **kw) -> pb.ListCollectionsResponse:
        """Every node's collections, merged by name; the page token is the last name returned."""
        size = request.page_size or 100
        replies = await asyncio.gather(*(c.list_collections(request, **kw) for c in self.clients.values()))
        merged = sorted((c for r in replies for c in r.collections), key=lambda c: c.name)
        more = len(merged) > size or any(r.next_page_token for r in replies)
        page = merged[:size]
        token = page[-1].name if more and page else ""
        return pb.ListCollectionsResponse(collections=page, next_page_token=token)
