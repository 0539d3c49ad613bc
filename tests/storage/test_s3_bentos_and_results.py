"""Bentos exported to and imported from S3 (BentoML's fsspec exporter), and Prefect results
persisted to S3 (a RemoteFileSystem block), against the local S3 server."""
from __future__ import annotations

import pytest

from components.errors import GenloopError
from tests.storage.conftest import files_containing, free_port

pytestmark = pytest.mark.slow

SERVICE = '''
import bentoml


@bentoml.service
class Echo:
    @bentoml.api
    def echo(self, text: str) -> str:
        return text
'''


@pytest.fixture(scope="module")
def tiny_bento(tmp_path_factory) -> str:
    import bentoml

    ctx = tmp_path_factory.mktemp("bento")
    # a module name of its own: `service` may already be imported (genloop's deploy/service.py,
    # by the serving tests), and BentoML would then find that one instead
    (ctx / "echo_service.py").write_text(SERVICE)
    (ctx / "bentofile.yaml").write_text("service: 'echo_service:Echo'\ninclude: ['echo_service.py']\n")
    return str(bentoml.bentos.build_bentofile(str(ctx / "bentofile.yaml"), build_ctx=str(ctx)).tag)


def _store() -> list[str]:
    import bentoml

    return sorted(str(b.tag) for b in bentoml.bentos.list())


def test_bento_export_to_s3_and_import_back(s3, tiny_bento, monkeypatch, capfd):
    import bentoml

    from components.registry import export_bento, import_bento
    from components.storage import list_keys, parse_s3_url

    monkeypatch.setenv("GENLOOP_BENTO_EXPORT_URL", f"s3://{s3.bucket}/bentos")
    url = export_bento(tiny_bento)
    assert url.startswith(f"s3://{s3.bucket}/bentos/") and url.endswith(".bento")
    assert url.removeprefix(f"s3://{s3.bucket}/") in list_keys(parse_s3_url(f"s3://{s3.bucket}/bentos", s3.endpoint))

    files = {p.relative_to(bentoml.bentos.get(tiny_bento).path).as_posix()
             for p in __import__("pathlib").Path(bentoml.bentos.get(tiny_bento).path).rglob("*") if p.is_file()}
    bentoml.bentos.delete(tiny_bento)
    assert tiny_bento not in _store()
    assert import_bento(url) == tiny_bento
    path = __import__("pathlib").Path(bentoml.bentos.get(tiny_bento).path)
    assert {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()} == files
    out = capfd.readouterr()
    assert s3.secret not in out.out + out.err
    assert not files_containing(path.parents[2], s3.secret)          # the whole BentoML home


@pytest.mark.parametrize("bad", ["unreachable endpoint", "wrong credentials", "missing bucket"])
def test_bad_s3_settings_for_bentos_fail_in_one_line(s3, tiny_bento, monkeypatch, bad):
    from components.registry import export_bento, import_bento

    url = f"s3://{s3.bucket}/bentos"
    if bad == "unreachable endpoint":
        monkeypatch.setenv("GENLOOP_S3_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    elif bad == "wrong credentials":
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    else:
        url = "s3://no-such-bucket/bentos"
    store = _store()
    for action in (lambda: export_bento(tiny_bento, url), lambda: import_bento(f"{url}/echo-x.bento")):
        with pytest.raises(GenloopError) as err:
            action()
        assert "\n" not in str(err.value) and s3.secret not in str(err.value)
    assert _store() == store


def test_prefect_results_persist_to_s3(s3, prefect_harness, monkeypatch):
    from prefect import flow
    from prefect.results import ResultStore
    from prefect.settings import PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK, temporary_settings

    from components.storage import list_keys, results_location
    from flows.storage import result_block, save_result_block

    monkeypatch.setenv("GENLOOP_RESULTS_URL", f"s3://{s3.bucket}/prefect-results")
    location = results_location()
    slug = save_result_block(location)

    @flow(persist_result=True)
    def answer() -> dict:
        return {"answer": 42}

    with temporary_settings(updates={PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK: slug}):
        state = answer(return_state=True)
    assert state.is_completed()
    keys = list_keys(location)
    assert len(keys) == 1, keys
    record = ResultStore(result_storage=result_block(location)).read(keys[0].rsplit("/", 1)[1])
    assert record.result == {"answer": 42}
    from prefect.blocks.core import Block

    saved = Block.load(slug)
    assert s3.secret not in saved.model_dump_json() and s3.key_id not in saved.model_dump_json()


def test_bad_results_bucket_fails_in_one_line(s3, monkeypatch):
    from flows.storage import save_result_block
    from components.storage import parse_s3_url

    with pytest.raises(GenloopError, match="does not exist") as err:
        save_result_block(parse_s3_url("s3://no-such-bucket/results", s3.endpoint))
    assert "\n" not in str(err.value)
