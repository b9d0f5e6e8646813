"""mathpool.run, plugins and describe give what the command gives; pool results equal
`mathpool run`'s records for the same tasks."""
import json

import pytest

import mathpool
from conftest import CONFIGS, command, record_form

VOLATILE = ("worker", "seconds")  # differ between any two runs


def records(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def stable(record):
    return {k: v for k, v in record.items() if k not in VOLATILE}


@pytest.fixture(scope="module")
def demo_records(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "demo.jsonl"
    command("run", CONFIGS / "demo.yaml", "-o", out, "-q")
    return records(out)


def test_run_returns_the_summary_and_writes_the_commands_records(tmp_path, demo_records):
    out = tmp_path / "demo.jsonl"
    s = mathpool.run(CONFIGS / "demo.yaml", output=out, workers=2)
    assert s["planned"] == len(demo_records) == s["ok"] + s["failed"]
    assert s["skipped"] == 0 and not s["interrupted"] and s["workers"] == 2
    assert s["by_status"] == {"ok": s["ok"]} if not s["failed"] else True
    assert set(s["by_run"]) == {r["run"] for r in demo_records}
    assert s["output"] == str(out) and s["provenance"] == str(out) + ".meta.json"
    assert s["seconds"] > 0 and isinstance(s["failures"], list) and isinstance(s["hosts"], list)
    assert [stable(r) for r in records(out)] == [stable(r) for r in demo_records]
    meta = json.loads(open(str(out) + ".meta.json").read())
    assert meta["tasks"]["ran"] == s["planned"]


def test_pool_results_equal_the_records(start, demo_records):
    with mathpool.Pool(workers=2, start=start) as pool:
        for rec in demo_records:
            if rec["status"] == "ok":
                got = pool.submit(rec["analysis"], rec["params"]).result(timeout=60)
                assert record_form(got) == rec["result"], rec["run"]
        # The same through map, per analysis, in record order.
        by_analysis = {}
        for rec in demo_records:
            by_analysis.setdefault(rec["analysis"], []).append(rec)
        for analysis, recs in by_analysis.items():
            out = pool.map(analysis, [r["params"] for r in recs], errors="return")
            for r, got in zip(recs, out):
                if r["status"] == "ok":
                    assert record_form(got) == r["result"]
                else:
                    assert got.kind == r["error"]["kind"] and got.message == r["error"]["message"]


def test_big_integers_are_decimal_strings_in_records(tmp_path, demo_records):
    degree128 = [r for r in demo_records if r["run"] == "degree128"][0]
    assert degree128["result"]["order"] == str(2**128 - 1)  # records unchanged
    with mathpool.Pool(workers=1) as pool:
        assert pool.submit("lfsr.cycles", degree128["params"]).result()["order"] == 2**128 - 1


def test_run_with_failures_resume_and_force(tmp_path, testkit):
    config = tmp_path / "c.yaml"
    config.write_text("pool: {workers: 2, task_timeout: 5s}\n"
                      "analyses:\n"
                      "  - name: e\n    analysis: testkit.echo\n    sweep: {i: {range: [0, 20]}}\n"
                      "  - name: bad\n    analysis: testkit.echo\n    params: {fault: throw}\n")
    out = tmp_path / "out.jsonl"
    s = mathpool.run(config, output=out, plugin_path=testkit)
    assert s["planned"] == 21 and s["ok"] == 20 and s["failed"] == 1
    assert s["by_status"] == {"ok": 20, "error": 1}
    assert s["by_run"] == {"e": {"ok": 20}, "bad": {"error": 1}}
    assert s["failures"] == [{"run": "bad", "task": 0, "repeat": 0, "kind": "plugin_error",
                              "message": "asked to fail"}]
    # An output that holds records is refused (as by the command), unless resumed or forced.
    cli = command("run", config, "-o", out, "--plugin-path", testkit[0], check=False)
    with pytest.raises(mathpool.Error) as e:
        mathpool.run(config, output=out, plugin_path=testkit)
    assert "mathpool: error: " + str(e.value) + "\n" == cli.stderr and cli.returncode == 2
    s = mathpool.run(config, output=out, resume=True, plugin_path=testkit)
    assert s["skipped"] == 21 and s["ok"] == 0
    assert s["skipped_by_status"] == {"ok": 20, "error": 1}
    assert s["skipped_by_run"] == {"e": {"ok": 20}, "bad": {"error": 1}}
    s = mathpool.run(config, output=out, force=True, plugin_path=testkit)
    assert s["ok"] == 20 and len(records(out)) == 21
    with pytest.raises(mathpool.Error):
        mathpool.run(config, output=out, resume=True, force=True)


def test_config_errors_have_the_commands_text(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("pool: {workers: 0}\nanalyses: []\n")
    cli = command("run", config, check=False)
    with pytest.raises(mathpool.Error) as e:
        mathpool.run(config)
    assert e.value.kind == "invalid_config"
    assert cli.stderr == f"mathpool: error: {e.value}\n"
    with pytest.raises(mathpool.Error, match="cannot read the file"):
        mathpool.run(tmp_path / "missing.yaml")


def test_run_writes_a_trace(tmp_path):
    trace = tmp_path / "t.json"
    summary = mathpool.run(CONFIGS / "demo.yaml", output=tmp_path / "out.jsonl", trace=trace)
    events = json.loads(trace.read_text())["traceEvents"]
    slices = [e for e in events if e.get("ph") == "X" and e.get("args", {}).get("task") is not None]
    assert len(slices) == summary["ok"] + summary["failed"]


def test_run_quiet_false_prints_the_commands_summary(tmp_path, capsys):
    mathpool.run(CONFIGS / "demo.yaml", output=tmp_path / "o.jsonl", quiet=False)
    err = capsys.readouterr().err
    assert "ok" in err and err.endswith("\n")


def test_plugins_and_describe_are_the_commands_json(testkit):
    assert mathpool.plugins() == json.loads(command("plugins", "--json").stdout)
    assert mathpool.plugins(plugin_path=testkit) == json.loads(
        command("plugins", "--json", "--plugin-path", testkit[0]).stdout)
    for name in ("lfsr.cycles", "example.echo", "example.sum"):
        assert mathpool.describe(name) == json.loads(command("describe", name, "--json").stdout)
    d = mathpool.describe("lfsr.polynomial")
    assert d["params"][0] == {"name": "field", "type": "integer", "default": None, "required": True,
                              "meaning": d["params"][0]["meaning"]}
    cli = command("describe", "no.such", "--json", check=False)
    with pytest.raises(mathpool.Error) as e:
        mathpool.describe("no.such")
    assert cli.stderr == f"mathpool: error: {e.value}\n"
