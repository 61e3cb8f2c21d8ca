"""Collections spread over several nodes by name: the rendezvous rule, and routing over gRPC."""

from __future__ import annotations

from collections import Counter

import pytest

from conftest import free_port
from instructforge.client import FailedPreconditionError
from instructforge.dedup.routing import Router
from instructforge.dedup.sharded_client import ShardedDedupClient
from instructforge.dedup.v1 import dedup_pb2 as pb
from instructforge.runtime.errors import FailedPrecondition

NODES = [f"dedup-{i}.dedup.iforge.svc:50052" for i in range(3)]
NAMES = [f"run-{i}.node-{i % 7}" for i in range(6000)]


def test_owner_is_stable_balanced_and_independent_of_list_order():
    a, b = Router(NODES), Router(list(reversed(NODES)))
    owners = [a.owner(n) for n in NAMES]
    assert owners == [b.owner(n) for n in NAMES]
    share = Counter(owners)
    assert set(share) == set(NODES) and all(abs(c / len(NAMES) - 1 / 3) < 0.03 for c in share.values())


def test_adding_a_node_moves_only_what_the_new_node_wins():
    before, after = Router(NODES), Router([*NODES, "dedup-3.dedup.iforge.svc:50052"])
    moved = [n for n in NAMES if before.owner(n) != after.owner(n)]
    assert all(after.owner(n) == "dedup-3.dedup.iforge.svc:50052" for n in moved)
    assert abs(len(moved) / len(NAMES) - 1 / 4) < 0.03


def test_removing_a_node_moves_only_its_collections():
    before, after = Router(NODES), Router(NODES[:2])
    for n in NAMES:
        if before.owner(n) != NODES[2]:
            assert after.owner(n) == before.owner(n)


def test_a_node_refuses_names_it_does_not_own():
    router = Router(NODES)
    name = next(n for n in NAMES if router.owner(n) == NODES[1])
    router.check_owner(name, NODES[1])
    with pytest.raises(FailedPrecondition) as err:
        router.check_owner(name, NODES[0])
    assert err.value.reason == "WRONG_SHARD" and err.value.metadata == {"owner": NODES[1]}


async def test_routing_over_three_servers(start_service, tmp_path):
    addresses = [f"127.0.0.1:{free_port()}" for _ in range(3)]
    for n, address in enumerate(addresses):
        await start_service("dedup", port=int(address.rsplit(":", 1)[1]), state_dir=tmp_path / f"node-{n}",
                            shard_addresses=",".join(addresses), shard_self=address)
    router = Router(addresses)
    names = [f"tree-{i}" for i in range(12)]
    async with ShardedDedupClient.connect(addresses, timeout=30) as client:
        for name in names:
            await client.create_collection(pb.CreateCollectionRequest(name=name))
            items = [pb.Item(text=f"Write a poem about {name}"), pb.Item(text=f"Write a poem about {name}!")]
            reply = await client.check_and_insert(pb.CheckAndInsertRequest(collection=name, items=items))
            assert [r.verdict for r in reply.results] == [pb.VERDICT_KEPT, pb.VERDICT_DROPPED]
        for address, node in client.clients.items():  # each node holds exactly the names it owns
            held = [c.name for c in (await node.list_collections(pb.ListCollectionsRequest())).collections]
            assert held == sorted(n for n in names if router.owner(n) == address)
        listed, token = [], ""
        while True:
            page = await client.list_collections(pb.ListCollectionsRequest(page_size=5, page_token=token))
            listed += [c.name for c in page.collections]
            token = page.next_page_token
            if not token:
                break
        assert listed == sorted(names)
        wrong = next(a for a in addresses if a != router.owner("tree-0"))
        with pytest.raises(FailedPreconditionError) as err:
            await client.clients[wrong].get_collection(pb.GetCollectionRequest(name="tree-0"))
        assert err.value.reason == "WRONG_SHARD" and err.value.metadata["owner"] == router.owner("tree-0")
