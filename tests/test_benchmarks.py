"""Every benchmark script imports, and every Python snippet it runs in a subprocess imports what it names.

Benchmarks are scripts that nothing else imports, and their child processes' code lives in strings that
neither ruff nor the other tests read: a name cut from the package's API broke two of them silently
(``warm_up`` and ``configure_threads``, no longer exported by ``cnfviz``). These tests import each script
without running it (each keeps its work under ``if __name__ == "__main__"``) and execute the import
statements of each snippet.

The harness's pure parts are checked too: how the protocol client reads loss points from a live chart's
arguments or stream events, and when its HTTP cache fetches again (what "a second run downloads no script
again" is measured with).
"""

import ast
import base64
import http.server
import importlib.util
import json
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from benchmarks.harness import free_port, proc_stats, process_tree
from benchmarks.harness.live import ComponentArgs, interpret, loss_points, stream_url
from benchmarks.harness.webcache import HttpCache

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p for p in BENCHMARKS.glob("*.py"))


def _load(path: Path) -> object:
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))  # as when run: ``python benchmarks/x.py`` puts its folder first
    spec = importlib.util.spec_from_file_location(f"_bench_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[spec.name]
        raise
    return module


def snippets(module: object) -> dict[str, list[ast.stmt]]:
    """The module-level strings that hold Python import lines: ``{name: those import statements}``.

    Only the import lines are parsed, so that a ``str.format`` template (``{targets!r}``) counts too.
    """
    out = {}
    for name, value in vars(module).items():
        if not isinstance(value, str) or name.startswith("__"):
            continue
        imports = []
        for line in value.splitlines():
            if not line.startswith(("import ", "from ")):
                continue
            try:
                imports += ast.parse(line).body
            except SyntaxError:
                continue  # prose that happens to start with "from"
        if imports:
            out[name] = imports
    return out


def test_every_script_has_a_main_guard_and_there_are_scripts():
    assert len(SCRIPTS) >= 10, SCRIPTS
    for path in SCRIPTS:
        if path.name == "common.py":
            continue
        assert 'if __name__ == "__main__":' in path.read_text(), f"{path.name} would run when imported"


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_benchmark_script_imports(path):
    _load(path)


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_subprocess_snippets_import(path):
    module = _load(path)
    for name, imports in snippets(module).items():
        code = compile(ast.Module(body=imports, type_ignores=[]), f"{path.name}:{name}", "exec")
        try:
            exec(code, {})
        except ImportError as err:
            pytest.fail(f"{path.name}: the snippet {name} cannot import: {err}")


def test_snippet_finder_finds_the_known_snippets_and_only_python():
    found = {p.name: set(snippets(_load(p))) for p in SCRIPTS}
    assert found["bench_abuse.py"] >= {"_CHILD"}
    assert found["bench_app.py"] >= {"HEADLESS"}
    assert found["bench_step.py"] >= {"MEASURE"}
    assert all("JS" not in name for names in found.values() for name in names)


def test_a_snippet_importing_a_missing_name_fails():
    bad = snippets(type("M", (), {"CODE": "import sys\nfrom cnfviz import no_such_name\nprint(1)\n"}))
    assert list(bad) == ["CODE"]
    with pytest.raises(ImportError, match="no_such_name"):
        exec(compile(ast.Module(body=bad["CODE"], type_ignores=[]), "CODE", "exec"), {})


class Sink:
    def __init__(self):
        self.loss, self.pictures, self.reruns = [], [], []

    def saw_loss(self, key, points, iteration, via):
        self.loss.append((key, points, iteration, via))

    def saw_picture(self, key, via):
        self.pictures.append((key, via))

    def ask_rerun(self, key, reason):
        self.reruns.append((key, reason))


def typed(a, dtype="f4"):
    return {"dtype": dtype, "bdata": base64.b64encode(np.asarray(a, dtype="<" + dtype).tobytes()).decode()}


def test_loss_points_reads_plain_and_typed_arrays():
    assert loss_points({"data": [{"x": [1, 2, 3], "y": [0.5, 0.4, 0.3]}]}) == (3, 3)
    assert loss_points({"data": [{"x": typed([1, 5, 9, 13]), "y": typed([1, 1, 1, 1])}]}) == (4, 13)
    assert loss_points({"data": [{"x": typed([7], "i4")}]}) == (1, 7)
    assert loss_points({"data": [{"x": [], "y": []}]}) == (0, None)
    assert loss_points({"data": []}) == (0, None)


def test_component_args_reports_the_loss_chart_and_pictures_by_key():
    sink = Sink()
    reader = ComponentArgs()
    spec = json.dumps({"figure": {"data": [{"x": typed([1, 2]), "y": typed([3, 2])}], "layout": {}}, "anim": None})
    reader.on_component(sink, "$$ID-abc-train_loss_chart", {"spec": spec, "rev": "1", "height": 300})
    reader.on_component(sink, "$$ID-def-train_density_chart", {"spec": spec})
    reader.on_component(sink, "$$ID-ghi-train_density_chart", {"spec": json.dumps({"figure": {"data": []}})})
    reader.on_component(sink, "$$ID-xyz-something_else", {"spec": spec})
    assert sink.loss == [("$$ID-abc-train_loss_chart", 2, 2, "delta")]
    assert sink.pictures == [("$$ID-def-train_density_chart", "delta")]


def test_stream_events_accumulate_points_and_read_whole_figures():
    sink, state = Sink(), {}
    interpret(sink, "p_loss_chart", {"x": [1, 2, 3], "y": [1.0, 0.9, 0.8]}, state)
    interpret(sink, "p_loss_chart", {"x": [4], "y": [0.7]}, state)
    interpret(sink, "p_loss_chart", {"figure": {"data": [{"x": [1, 2, 3, 4, 5]}]}}, state)
    interpret(sink, "p_density_chart", {"anything": 1}, state)
    assert [(p, i) for _, p, i, _ in sink.loss] == [(3, 3), (4, 4), (5, 5)]
    assert sink.pictures == [("p_density_chart", "stream")]


def test_live_channel_events_extend_replace_and_ask_for_a_rerun():
    """The live branch's stream: ``loss`` appends (``+``) or replaces a curve, ``lossfigure`` is a whole
    figure, ``visuals`` brings both pictures, ``rerun`` makes the page rerun; ``status`` changes nothing here."""
    sink, state = Sink(), {}
    interpret(sink, "k_loss_chart", {"curves": [["+", [1, 2], [3.0, 2.9]], None], "iteration": 2}, state, "loss")
    interpret(sink, "k_loss_chart", {"curves": [["+", typed([3, 4, 5]), typed([2.8, 2.7, 2.6])]]}, state, "loss")
    interpret(sink, "k_loss_chart", {"iteration": 5, "text": "Iteration 5 / 400"}, state, "status")
    interpret(sink, "k_loss_chart", {"curves": [["=", [1, 5], [3.0, 2.6]]], "iteration": 6}, state, "loss")
    interpret(sink, "k_loss_chart", {"data": [{"x": [1, 2, 3, 4, 5, 6, 7]}], "layout": {}}, state, "lossfigure")
    interpret(sink, "k_loss_chart", {"version": 2, "density": {}, "flow": {}}, state, "visuals")
    interpret(sink, "k_loss_chart", {"reason": "done"}, state, "rerun")
    assert [(p, i) for _, p, i, _ in sink.loss] == [(2, 2), (5, 5), (2, 6), (7, 7)]
    assert sink.pictures == [("stream_density_chart", "stream"), ("stream_flow_chart", "stream")]
    assert sink.reruns == [("k_loss_chart", "done")]


def test_stream_url_is_resolved_against_the_iframe_page():
    page = "http://h:1/component/c/index.html"
    assert stream_url(page, {"spec": "{}", "stream": "/live/abc?token=x"}) == "http://h:1/live/abc?token=x"
    assert stream_url(page, {"spec": "/not-a-stream-key"}) is None
    assert stream_url(page, {"src": "http://other:2/s"}) == "http://other:2/s"
    loss = {"stream": {"url": "../../_cnfviz/stream/tok", "role": "loss"}}
    assert stream_url(page, loss) == "http://h:1/_cnfviz/stream/tok?n=&v=-1"
    drawn = {"stream": {"url": "../../_cnfviz/stream/tok", "role": "loss", "n": [12, 3], "v": 4}}
    assert stream_url(page, drawn) == "http://h:1/_cnfviz/stream/tok?n=12,3&v=4", "the page's cursor, as the iframe"
    assert stream_url(page, {"stream": {"url": "../../_cnfviz/stream/tok", "role": "density"}}) is None


@pytest.fixture
def server():
    """A static server whose responses carry the headers a test asks for, counting the requests it serves."""
    headers: dict[str, dict[str, str]] = {}
    hits: list[tuple[str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            extra = headers.get(self.path, {})
            etag = extra.get("ETag")
            if etag and self.headers.get("If-None-Match") == etag:
                hits.append((self.path, "304"))
                self.send_response(304)
                self.end_headers()
                return
            hits.append((self.path, "200"))
            body = b"x" * 1000
            self.send_response(200)
            for k, v in extra.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    port = free_port()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{port}", headers, hits
    httpd.shutdown()


def test_http_cache_refetches_public_without_lifetime_and_keeps_max_age(server):
    base, headers, hits = server
    headers["/public"] = {"Cache-Control": "public"}  # what plotly.min.js gets today: no max-age, no validator
    headers["/aged"] = {"Cache-Control": "public, max-age=3600"}
    headers["/etag"] = {"Cache-Control": "no-cache", "ETag": '"v1"'}
    cache = HttpCache()
    sizes = [cache.get(f"{base}{p}").bytes for p in ("/public", "/public", "/aged", "/aged", "/etag", "/etag")]
    assert sizes == [1000, 1000, 1000, 0, 1000, 0]
    assert hits == [("/public", "200"), ("/public", "200"), ("/aged", "200"), ("/etag", "200"), ("/etag", "304")]
    assert [f.status for f in cache.log] == [200, 200, 200, 0, 200, 304]
    headers["/once"] = {"Cache-Control": "public, max-age=31536000, immutable"}
    threads = [threading.Thread(target=cache.get, args=(f"{base}/once",)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert hits.count(("/once", "200")) == 1  # three iframes at once download it once (the cache lock)
    headers["/store"] = {"Cache-Control": "no-store, max-age=60"}
    assert [cache.get(f"{base}/store").status for _ in range(2)] == [200, 200]


def test_process_readings_of_this_process():
    own = proc_stats(__import__("os").getpid())
    assert own.processes == 1 and own.rss_mib > 10 and own.threads >= 1 and own.cpu_s > 0
    assert process_tree(__import__("os").getpid())[0] == __import__("os").getpid()
    assert proc_stats(2**22 + 12345).processes == 0  # a process that does not exist reads as empty
