"""Real LibreTranslate clients against a live ``nmt serve`` on the toy model (xx -> yy):
each test replays a client's exact request and reads the answer as that client does.
The expected translations are the model's own answers to the plain sentences on
``/v1/translate``: a document route must give each sentence the same translation."""

from __future__ import annotations

import json
from urllib import parse, request

import httpx
from libretranslatepy import LibreTranslateAPI
from lxml import html as lxml_html


def v1(base: str, text: str) -> str:
    answer = httpx.post(f"{base}/v1/translate", json={"text": text, "model": "toy"})
    return answer.json()["translations"][0]["translation"]


def test_libretranslatepy_unchanged(live_server: str) -> None:
    client = LibreTranslateAPI(live_server)
    assert client.translate("the dog runs", "xx", "yy") == v1(live_server, "the dog runs")
    assert client.languages() == [
        {"code": "xx", "name": "xx", "targets": ["yy"]},
        {"code": "yy", "name": "yy", "targets": []},
    ]
    assert client.detect("the dog runs")[0]["language"] == "xx"


def test_a_bodiless_post_with_query_parameters(live_server: str) -> None:
    query = parse.urlencode({"q": "a big red ball", "source": "XX", "target": "yy"})
    answer = httpx.post(f"{live_server}/translate?{query}")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"translatedText": v1(live_server, "a big red ball")}


def test_argos_translate_posts_a_urlencoded_form(live_server: str) -> None:
    data = parse.urlencode({"q": "the cat sees a man", "source": "xx", "target": "yy"})
    with request.urlopen(request.Request(f"{live_server}/translate", data=data.encode())) as r:
        assert json.loads(r.read())["translatedText"] == v1(live_server, "the cat sees a man")


def test_mastodon_status_with_html_auto_and_a_null_key(live_server: str) -> None:
    link = '<a href="https://x.org/@a" class="u-url mention">@alice</a>'
    status = f"<p>the dog runs</p><p>a {link} man</p>"
    body = {
        "q": [status, "the cat", "a ball", ""],
        "source": "auto",
        "target": "yy",
        "format": "html",
        "api_key": None,
    }
    answer = httpx.post(f"{live_server}/translate", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    payload = answer.json()
    translated = [payload["translatedText"][i] for i in range(4)]
    languages = [payload["detectedLanguage"][i]["language"] for i in range(4)]
    assert languages == ["xx"] * 4
    root = lxml_html.fragment_fromstring(translated[0], create_parent="div")
    assert root.findall("p")[0].text_content() == v1(live_server, "the dog runs")
    link = root.find(".//a")
    assert link is not None and link.get("href") == "https://x.org/@a"
    assert link.get("class") == "u-url mention" and link.text == "@alice"
    assert translated[1:] == [v1(live_server, "the cat"), v1(live_server, "a ball"), ""]


def test_weblate_lists_both_sides_of_a_pair_and_gets_20_answers(live_server: str) -> None:
    codes = [x["code"] for x in httpx.get(f"{live_server}/languages").json()]
    assert "xx" in codes and "yy" in codes
    texts = [f"the {w} runs" for w in ["dog", "cat", "man", "woman"] * 5]
    body = {"api_key": "", "q": texts, "source": "xx", "target": "yy"}
    payload = httpx.post(f"{live_server}/translate", json=body, timeout=60).json()
    assert len(payload["translatedText"]) == len(texts) == 20
    assert payload["translatedText"][0] == v1(live_server, "the dog runs")


def test_wagtail_localize_sends_a_page_of_150_html_segments(live_server: str) -> None:
    words = ["dog", "cat", "ball", "man", "woman"]
    segments = [f"the <b>{words[i % 5]}</b> runs" for i in range(150)]
    body = {"q": segments, "source": "xx", "target": "yy", "format": "html"}
    answer = httpx.post(
        f"{live_server}/translate", content=json.dumps(body),
        headers={"Content-Type": "application/json"}, timeout=120,
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    translated = answer.json()["translatedText"]
    assert len(translated) == 150
    plain = {w: v1(live_server, f"the {w} runs") for w in words}
    for i, out in enumerate(translated):
        root = lxml_html.fragment_fromstring(out, create_parent="div")
        assert [e.tag for e in root.iter()] == ["div", "b"], out
        assert root.text_content() == plain[words[i % 5]]


def test_lines_and_blank_lines_are_kept_and_each_line_translated(live_server: str) -> None:
    text = "the dog runs\n\n  a man sees a cat\nthe woman runs  "
    body = {"q": text, "source": "xx", "target": "yy"}
    out = httpx.post(f"{live_server}/translate", json=body).json()["translatedText"]
    lines = [v1(live_server, s) for s in ["the dog runs", "a man sees a cat", "the woman runs"]]
    assert out == f"{lines[0]}\n\n  {lines[1]}\n{lines[2]}  "


def test_placeholders_and_words_the_model_cannot_spell_come_back_verbatim(
    live_server: str,
) -> None:
    kept = ["https://x.org/a?b=1", "jo@x.org", "@bob", "#tag", "42", "{0}", "%s", "Ωμέγα"]
    text = "the dog " + " ".join(kept) + " runs"
    body = {"q": text, "source": "xx", "target": "yy"}
    out = httpx.post(f"{live_server}/translate", json=body).json()["translatedText"]
    for placeholder in kept:
        assert out.split().count(placeholder) == 1, (placeholder, out)
    assert [w for w in out.split() if w not in kept] == v1(live_server, "the dog runs").split()


def test_a_long_text_is_split_not_refused(toy_model, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.settings import Settings

    sentence = "the dog runs a man sees a cat the woman runs"
    text = "\n".join([sentence] * 115)  # 5,174 characters
    assert len(text) > 5000
    settings = Settings(models={"toy": toy_model}, device="cpu")
    with TestClient(create_app(settings)) as c:
        while c.get("/ready").status_code != 200:
            pass
        answer = c.post("/translate", json={"q": text, "source": "xx", "target": "yy"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["translatedText"].count("\n") == 114
