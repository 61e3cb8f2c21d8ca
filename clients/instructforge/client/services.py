"""One typed client per InstructForge service, each RPC declared in one checked line (see `base`).

Default deadlines follow what one call of each service may legitimately do: a generation waits for
rate-limit slots and backend retries, a tagging call runs an LLM over a whole batch, while the
trainer only records and reads jobs. Pass `timeout=` to the constructor or to a call to change them.
"""

from __future__ import annotations

from instructforge.client.base import ServiceClient
from instructforge.client.rpc import bidi_stream, server_stream, unary
from instructforge.dedup.v1 import dedup_pb2 as dd
from instructforge.generator.v1 import generator_pb2 as gen
from instructforge.tagger.v1 import tagger_pb2 as tg
from instructforge.trainer.v1 import trainer_pb2 as tr
from instructforge.verifier.v1 import verifier_pb2 as vf


class GeneratorClient(ServiceClient):
    """The generator gateway: generations from any configured LLM backend, cached and accounted."""

    service = gen.DESCRIPTOR.services_by_name["GeneratorService"]
    default_timeout = 300.0

    generate = unary(gen.GenerateRequest, gen.GenerateResponse)
    stream_generate = bidi_stream(gen.StreamGenerateRequest, gen.StreamGenerateResponse)
    stream_generate_batches = bidi_stream(gen.StreamGenerateBatchesRequest, gen.StreamGenerateBatchesResponse)
    list_models = unary(gen.ListModelsRequest, gen.ListModelsResponse)
    get_usage = unary(gen.GetUsageRequest, gen.GetUsageResponse)


class DedupClient(ServiceClient):
    """Named collections of kept texts and the atomic "keep it only if it is new" check."""

    service = dd.DESCRIPTOR.services_by_name["DedupService"]
    default_timeout = 120.0

    create_collection = unary(dd.CreateCollectionRequest, dd.CreateCollectionResponse)
    get_collection = unary(dd.GetCollectionRequest, dd.GetCollectionResponse)
    list_collections = unary(dd.ListCollectionsRequest, dd.ListCollectionsResponse)
    delete_collection = unary(dd.DeleteCollectionRequest, dd.DeleteCollectionResponse)
    check_and_insert = unary(dd.CheckAndInsertRequest, dd.CheckAndInsertResponse)
    check = unary(dd.CheckRequest, dd.CheckResponse)
    insert = unary(dd.InsertRequest, dd.InsertResponse)
    search = unary(dd.SearchRequest, dd.SearchResponse)
    snapshot_collection = unary(dd.SnapshotCollectionRequest, dd.SnapshotCollectionResponse)
    compare_texts = unary(dd.CompareTextsRequest, dd.CompareTextsResponse)


class VerifierClient(ServiceClient):
    """Sandboxed execution of untrusted programs against tests."""

    service = vf.DESCRIPTOR.services_by_name["VerifierService"]
    default_timeout = 120.0

    execute = unary(vf.ExecuteRequest, vf.ExecuteResponse)
    execute_stream = bidi_stream(vf.ExecuteStreamRequest, vf.ExecuteStreamResponse)
    get_sandbox_info = unary(vf.GetSandboxInfoRequest, vf.GetSandboxInfoResponse)


class TaggerClient(ServiceClient):
    """Open tagging, tag normalisation, clustering, scoring and budgeted diverse selection."""

    service = tg.DESCRIPTOR.services_by_name["TaggerService"]
    default_timeout = 600.0

    tag_items = unary(tg.TagItemsRequest, tg.TagItemsResponse)
    normalize_tags = unary(tg.NormalizeTagsRequest, tg.NormalizeTagsResponse)
    cluster_items = unary(tg.ClusterItemsRequest, tg.ClusterItemsResponse)
    score_items = unary(tg.ScoreItemsRequest, tg.ScoreItemsResponse)
    select_items = unary(tg.SelectItemsRequest, tg.SelectItemsResponse)


class TrainerClient(ServiceClient):
    """Fine-tuning jobs; `watch_fine_tune_job` streams state changes until the job ends."""

    service = tr.DESCRIPTOR.services_by_name["TrainerService"]
    default_timeout = 30.0

    create_fine_tune_job = unary(tr.CreateFineTuneJobRequest, tr.CreateFineTuneJobResponse)
    get_fine_tune_job = unary(tr.GetFineTuneJobRequest, tr.GetFineTuneJobResponse)
    list_fine_tune_jobs = unary(tr.ListFineTuneJobsRequest, tr.ListFineTuneJobsResponse)
    watch_fine_tune_job = server_stream(tr.WatchFineTuneJobRequest, tr.WatchFineTuneJobResponse)
    cancel_fine_tune_job = unary(tr.CancelFineTuneJobRequest, tr.CancelFineTuneJobResponse)


CLIENTS: dict[str, type[ServiceClient]] = {
    "generator": GeneratorClient,
    "dedup": DedupClient,
    "verifier": VerifierClient,
    "tagger": TaggerClient,
    "trainer": TrainerClient,
}
