"""The operator page in a real headless Chromium against the real service: adapters listed, registered from
a folder under the adapter root and unregistered; router examples edited, the router retrained with a
progress bar and evaluated before and after; the new adapter then routable."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from tests.router.ui.conftest import screenshot
from tests.service_config import ADMIN_KEY

TRAINING_MS = 900_000
RECIPES = [
    "How do I make a simple tomato sauce for pasta?",
    "Give me a recipe for banana bread",
    "What can I cook with chicken, rice and broccoli?",
    "How long should I boil an egg for a runny yolk?",
    "Recipe for a vegetarian lasagna please",
    "How do I make pancakes without eggs?",
    "What's a quick weeknight dinner with salmon?",
    "How do I bake sourdough bread at home?",
    "Suggest a soup I can make with leftover vegetables",
    "How much garlic goes into a classic pesto?",
    "Give me a recipe for chocolate chip cookies",
    "How do I marinate tofu so it has flavour?",
]


def adapter_row(page: Page, name: str):  # -> Locator
    return page.locator(f"[data-testid=adapter-row][data-name={name}]")


def test_adapters_are_listed_with_their_state_and_unregistered_from_the_page(
    open_page, http: httpx.Client, service_data_dir: Path
) -> None:
    shutil.copytree(service_data_dir / "adapters" / "delta", service_data_dir / "adapters" / "scratch")
    assert http.post("/v1/adapters", json={"name": "scratch", "path": "scratch"}).status_code == 201
    page = open_page("/ui/operator", ADMIN_KEY)
    expect(adapter_row(page, "scratch")).to_be_visible()
    listed = {a["name"]: a for a in http.get("/v1/adapters").json()["data"]}
    rows = page.locator("[data-testid=adapter-row]")
    assert {r.get_attribute("data-name") for r in rows.all()} == set(listed)
    sql_row = adapter_row(page, "sql")
    assert int(sql_row.locator("[data-testid=served]").text_content()) == listed["sql"]["requests_served"]
    # Registered folders are not offered again.
    offered = page.locator("[data-testid=folder] option").all_text_contents()
    assert "scratch" not in offered and "delta" in offered

    page.once("dialog", lambda dialog: dialog.accept())
    adapter_row(page, "scratch").locator("[data-testid=unregister]").click()
    expect(adapter_row(page, "scratch")).to_have_count(0)
    assert http.get("/v1/adapters/scratch").status_code == 404
    expect(page.locator("[data-testid=folder] option", has_text="scratch")).to_have_count(1)
    assert page.script_errors == []


def test_register_retrain_and_route_from_the_page(
    open_page, http: httpx.Client, service_data_dir: Path
) -> None:
    shutil.copytree(service_data_dir / "adapters" / "delta", service_data_dir / "adapters" / "recipes")
    before = http.get("/v1/router").json()
    page = open_page("/ui/operator", ADMIN_KEY)
    expect(page.locator("[data-testid=example-row]")).to_have_count(before["num_examples"])

    # Register from a folder under the adapter root, with example messages for the router.
    page.select_option("[data-testid=folder]", "recipes")
    assert page.input_value("[data-testid=adapter-name]") == "recipes"
    page.fill("[data-testid=adapter-examples]", "\n".join(RECIPES))
    page.click("[data-testid=register-button]")
    expect(adapter_row(page, "recipes")).to_be_visible()
    expect(page.locator("[data-testid=register-status]")).to_contain_text("registered recipes")
    assert http.get("/v1/adapters/recipes").json()["examples"] == RECIPES
    assert http.post("/v1/route", json={"text": RECIPES[0]}).json()["label"] != "recipes"  # not yet

    # One more example through the editor, then retrain.
    page.fill("[data-testid=new-label]", "recipes")
    page.fill("[data-testid=new-text]", "What should I cook for a dinner party of six?")
    page.click("[data-testid=add-example-button]")
    expect(page.locator("[data-testid=pending]")).to_contain_text("retrain")
    page.click("[data-testid=retrain]")
    # The progress bar moves while the service trains...
    page.wait_for_function(
        """() => document.querySelector('[data-testid=train-status]').textContent.startsWith('training… ')
            && parseFloat(document.querySelector('[data-testid=progress]').style.width) > 0""",
        timeout=60_000,
        polling=50,
    )
    # ...and the new router goes live, evaluated before and after on the held-out set.
    expect(page.locator("[data-testid=train-status]")).to_contain_text("is live", timeout=TRAINING_MS)
    live = http.get("/v1/router").json()
    assert live["version"] != before["version"] and "recipes" in live["labels"]
    assert live["num_examples"] == before["num_examples"] + len(RECIPES) + 1
    evaluations = page.locator("[data-testid=evaluation]")
    expect(evaluations).to_have_count(2)
    versions = [e.get_attribute("data-version") for e in evaluations.all()]
    assert versions == [before["version"], live["version"]]
    for evaluation in evaluations.all():
        assert evaluation.locator("[data-testid=confusion] rect").count() >= len(before["labels"]) ** 2
        assert float(evaluation.locator("[data-testid=accuracy]").text_content().split()[1]) > 50
        policy = evaluation.locator("[data-testid=policy-accuracy]").text_content()
        assert float(policy.split()[4]) > 50 and "to the fallback" in policy
    expect(page.locator("[data-testid=pending]")).to_have_text("")

    # Routable now, on the page and through the API.
    page.fill("[data-testid=try-text]", "How do I make a creamy mushroom risotto?")
    page.press("[data-testid=try-text]", "Enter")
    expect(page.locator("[data-testid=try-model]")).to_have_text("recipes")
    routed = http.post("/v1/route", json={"text": "How do I make a creamy mushroom risotto?"}).json()
    assert (routed["model"], routed["label"]) == ("recipes", "recipes")
    screenshot(page, "operator")
    assert page.script_errors == []
