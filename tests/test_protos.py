"""The contracts: committed stubs match the protos, and the protos follow our API conventions."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import gen_protos
import proto_lint

SERVICES = ("generator", "dedup", "verifier", "tagger", "trainer")


@pytest.fixture(scope="module")
def fresh_stubs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("stubs")
    gen_protos.generate(out)
    return out


def test_committed_stubs_are_fresh(fresh_stubs):
    assert gen_protos.stale_files(gen_protos.STUB_ROOT, fresh_stubs) == []


def test_freshness_check_catches_an_edited_stub_and_a_missing_one(fresh_stubs, tmp_path):
    committed = tmp_path / "committed"
    shutil.copytree(fresh_stubs, committed)
    edited = committed / "instructforge/dedup/v1/dedup_pb2.py"
    edited.write_text(edited.read_text() + "\n# hand edit\n")
    (committed / "instructforge/verifier/v1/verifier_pb2.pyi").unlink()
    problems = gen_protos.stale_files(committed, fresh_stubs)
    assert "stale: instructforge/dedup/v1/dedup_pb2.py" in problems
    assert "missing: instructforge/verifier/v1/verifier_pb2.pyi" in problems


def test_every_service_has_a_versioned_api_with_stubs_and_type_stubs():
    for name in SERVICES:
        package = gen_protos.STUB_ROOT / "instructforge" / name / "v1"
        assert (package / f"{name}_pb2.py").is_file()
        assert (package / f"{name}_pb2.pyi").is_file()
        assert (package / f"{name}_pb2_grpc.py").is_file()


def test_protos_follow_the_conventions():
    assert proto_lint.lint(proto_lint.descriptor_set_of(ROOT / "proto")) == []


def test_linter_catches_each_broken_convention():
    problems = "\n".join(proto_lint.lint(proto_lint.descriptor_set_of(Path(__file__).parent / "fixtures/bad_protos")))
    expected = [
        "package 'instructforge.billing' must be instructforge.<name>.v<N>",
        "service Shop must be PascalCase and end in 'Service'",
        "rpc Shop.GetOrder: request must be GetOrderRequest, not OrderQuery",
        "rpc Shop.FindOrder: request must be FindOrderRequest, not GetOrderResponse",
        "GetOrderResponse is already used by rpc GetOrder",
        "enum Colour must start with COLOUR_UNSPECIFIED = 0",
        "enum value RED must be UPPER_SNAKE_CASE prefixed by COLOUR_",
        "OrderQuery.orderId: field name is not lower_snake_case",
        "OrderQuery.timeout: a time field carries its unit",
        "OrderQuery.memory_limit: a size field carries its unit",
        "GetOrderResponse.item: repeated field names are plural",
        "rpc Shop.ListOrders: List requests carry page_size and page_token",
        "rpc Shop.ListOrders: List responses carry next_page_token",
        "imports instructforge/billing/billing.proto; an API may import only",
    ]
    for fragment in expected:
        assert fragment in problems, f"linter missed: {fragment}\n{problems}"


def test_every_rpc_of_the_issue_exists():
    """The v1 surface promised to callers: removing or renaming an RPC breaks them."""
    from instructforge.dedup.v1 import dedup_pb2
    from instructforge.generator.v1 import generator_pb2
    from instructforge.tagger.v1 import tagger_pb2
    from instructforge.trainer.v1 import trainer_pb2
    from instructforge.verifier.v1 import verifier_pb2

    surface = {
        generator_pb2: ("GeneratorService", {"Generate", "StreamGenerate", "ListModels"}),
        dedup_pb2: ("DedupService", {"CreateCollection", "GetCollection", "ListCollections", "DeleteCollection",
                                     "CheckAndInsert", "Check", "Insert", "Search", "SnapshotCollection"}),
        verifier_pb2: ("VerifierService", {"Execute", "ExecuteStream"}),
        tagger_pb2: ("TaggerService", {"TagItems", "NormalizeTags", "ClusterItems", "ScoreItems", "SelectItems"}),
        trainer_pb2: ("TrainerService", {"CreateFineTuneJob", "GetFineTuneJob", "ListFineTuneJobs",
                                         "WatchFineTuneJob", "CancelFineTuneJob"}),
    }
    for module, (service, rpcs) in surface.items():
        methods = module.DESCRIPTOR.services_by_name[service].methods_by_name
        assert rpcs <= set(methods), f"{service} lacks {rpcs - set(methods)}"
    stream = generator_pb2.DESCRIPTOR.services_by_name["GeneratorService"].methods_by_name["StreamGenerate"]
    assert stream.client_streaming and stream.server_streaming
