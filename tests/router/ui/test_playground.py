"""The playground in a real headless Chromium against the real service: a streamed `auto` answer with the
adapter that answered and its score bars, a pinned override, and the conversation kept per tab."""

from __future__ import annotations

import httpx
import openai
from playwright.sync_api import Page, expect

from tests.router.ui.conftest import screenshot
from tests.service_config import USER_KEY

SQL = "How many orders did each customer place last month? Give me the query."
ARITHMETIC = "What is 12 times 7?"
GENERATION_S = 120_000  # ms; the CPU engine streams a few tokens a second


# Records the newest answer's text at every DOM change, inside the page: polling from the test process
# misses steps when the machine is busy.
RECORD_STREAM = """() => {
  window.streamed = [];
  const transcript = document.querySelector("[data-testid=transcript]");
  new MutationObserver(() => {
    const answers = transcript.querySelectorAll("[data-testid=answer]");
    const text = answers[answers.length - 1]?.querySelector(".text")?.textContent;
    if (text && window.streamed[window.streamed.length - 1] !== text) window.streamed.push(text);
  }).observe(transcript, { childList: true, subtree: true, characterData: true });
}"""


def send(page: Page, text: str) -> list[str]:
    """Type and send a message, wait for the answer; returns the texts the newest answer showed while it
    streamed."""
    answers = page.locator("[data-testid=answer]")
    count = answers.count()
    page.evaluate(RECORD_STREAM)
    page.fill("[data-testid=message]", text)
    page.click("[data-testid=send]")
    answers.nth(count).locator("[data-testid=ttft], [data-testid=error]").first.wait_for(timeout=GENERATION_S)
    return page.evaluate("window.streamed")


def scores_shown(page: Page) -> dict[str, float]:
    bars = page.locator("[data-testid=answer]").last.locator("[data-testid=score-bar]")
    return {bar.get_attribute("data-label"): float(bar.get_attribute("data-score")) for bar in bars.all()}


def test_auto_answer_streams_with_the_chosen_adapter_and_its_scores(
    open_page, client: openai.OpenAI, http: httpx.Client
) -> None:
    page = open_page("/ui", USER_KEY)
    page.wait_for_selector("[data-testid=model] option[value=sql]", state="attached")
    assert page.input_value("[data-testid=model]") == "auto"
    page.fill("[data-testid=max-tokens]", "12")

    partial = send(page, SQL)
    answer = page.locator("[data-testid=answer]").last
    expect(answer.locator("[data-testid=ttft]")).to_be_visible(timeout=GENERATION_S)
    assert answer.locator("[data-testid=error]").count() == 0
    text = answer.locator(".text").text_content()
    # Streamed: part of the text was on the page before the rest (the engine may hand over several tokens at
    # once when the machine is busy, so the number of steps varies).
    assert len(partial) >= 2 and partial[-1] == text
    assert all(len(a) < len(b) for a, b in zip(partial, partial[1:], strict=False))
    assert answer.locator("[data-testid=answered-by]").text_content() == "sql"
    assert answer.locator("[data-testid=outcome]").text_content() == "routed"
    scores = scores_shown(page)
    assert set(scores) == set(http.get("/v1/router").json()["labels"])
    assert max(scores, key=scores.__getitem__) == "sql"
    assert abs(sum(scores.values()) - 1) < 0.01
    assert "tok/s" in answer.locator("[data-testid=tps]").text_content()
    # What the page showed is what the API answers to the same request.
    reply = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": SQL}], max_tokens=12, temperature=0
    )
    assert reply.model == "sql" and reply.choices[0].message.content == text
    assert page.script_errors == []


def test_pinned_adapter_overrides_routing_and_history_stays_in_the_tab(open_page, browser) -> None:
    page = open_page("/ui", USER_KEY)
    page.wait_for_selector("[data-testid=model] option[value=math]", state="attached")
    page.fill("[data-testid=max-tokens]", "12")
    send(page, SQL)
    page.select_option("[data-testid=model]", "math")
    expect(page.locator("[data-testid=model-help]")).to_contain_text("Pinned")
    send(page, ARITHMETIC)
    answer = page.locator("[data-testid=answer]").last
    assert answer.locator("[data-testid=error]").count() == 0
    assert answer.locator("[data-testid=answered-by]").text_content() == "math"
    assert answer.locator("[data-testid=outcome]").text_content() == "pinned"
    assert answer.locator("[data-testid=score-bar]").count() == 0  # nothing was classified
    screenshot(page, "playground")

    # The conversation survives a reload of this tab, choice of model included...
    page.reload()
    expect(page.locator("[data-testid=answer]")).to_have_count(2)
    expect(page.locator("[data-testid=question]")).to_have_count(2)
    page.wait_for_selector("[data-testid=model] option[value=math]", state="attached")
    assert page.input_value("[data-testid=model]") == "math"
    # ...but another tab starts its own.
    other = page.context.new_page()
    other.goto(page.url)
    other.wait_for_load_state("load")
    expect(other.locator("[data-testid=question]")).to_have_count(0)
    # An unknown model is a clear error on the page, and the history is not touched by it.
    page.click("[data-testid=new-chat]")
    expect(page.locator("[data-testid=question]")).to_have_count(0)
    page.evaluate("""() => { const s = document.querySelector('[data-testid=model]');
        s.append(new Option('gone', 'gone')); s.value = 'gone'; }""")
    send(page, "hello")
    expect(page.locator("[data-testid=error]")).to_contain_text("404")
    page.reload()
    expect(page.locator("[data-testid=question]")).to_have_count(0)
