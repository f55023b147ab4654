"""Pure parts of the Elasticsearch adapter: index names, filters, versioned bulk actions."""

import pytest

from spice.stores.search_elasticsearch import (
    ElasticsearchSearchIndex,
    alias_name,
    bulk_operations,
    filter_terms,
)

pytestmark = pytest.mark.unit


def test_index_names_are_lowercase_and_keep_case_distinct_databases_apart():
    assert alias_name("Sales", "instance") != alias_name("sales", "instance")
    name = alias_name("Sales Dept/2", "class")
    assert name == name.lower() and "/" not in name and " " not in name
    assert name.startswith("spice-classes-")


def test_filters_become_keyword_terms_on_the_flattened_copy():
    assert filter_terms({"city": "Seoul", "age": 3, "ok": True, "tags": ["a", "b"],
                         "address": {"zip": "04524"}}) == [
        {"term": {"body.city": "Seoul"}}, {"term": {"body.age": "3"}}, {"term": {"body.ok": "true"}},
        {"term": {"body.tags": "a"}}, {"term": {"body.tags": "b"}},
        {"term": {"body.address.zip": "04524"}}]


def test_upserts_use_external_versions_and_deletes_are_tombstones_with_external_gte():
    folded = {("db", "instance", "Item/a"): (4, ("Item", "a lamp", {"name": "lamp"}), "Item"),
              ("db", "instance", "Item/b"): (7, None, "Item")}
    ops = bulk_operations(folded)
    assert ops[0]["index"]["version"] == 4 and ops[0]["index"]["version_type"] == "external"
    assert ops[1]["deleted"] is False and ops[1]["document"] == {"name": "lamp"}
    assert ops[2]["index"]["version_type"] == "external_gte" and ops[3]["deleted"] is True
    assert ops[2]["index"]["_index"] == alias_name("db", "instance")


class _NoShardYet(Exception):
    """What the client raises while a new index's primary shard is still starting."""

    status_code = 503
    body = {"error": {"type": "search_phase_execution_exception", "root_cause": [
        {"type": "no_shard_available_action_exception", "reason": "[node][search]"}]}}


class _StartingIndex:
    def __init__(self, failures: int, error: type[Exception] = _NoShardYet) -> None:
        self.failures, self.error, self.calls = failures, error, []
        self.cluster = self

    async def search(self, **request):
        self.calls.append("search")
        if self.failures:
            self.failures -= 1
            raise self.error()
        return {"hits": {"hits": [], "total": {"value": 0}}}

    async def health(self, **request):
        self.calls.append(("health", request["wait_for_status"]))


async def test_a_search_on_an_index_whose_shard_has_not_started_waits_for_it_and_asks_again():
    es = _StartingIndex(failures=1)
    index = ElasticsearchSearchIndex("", client=es)
    await index._search(index="spice-instances-x", size=1)
    assert es.calls == ["search", ("health", "yellow"), "search"]


async def test_other_search_errors_are_not_retried():
    es = _StartingIndex(failures=1, error=RuntimeError)
    with pytest.raises(RuntimeError):
        await ElasticsearchSearchIndex("", client=es)._search(index="i", size=1)
    assert es.calls == ["search"]
