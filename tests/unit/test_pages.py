"""The page both HTML reports share: nothing fetched, nothing run, the title escaped, the styles scoped."""

from __future__ import annotations

from mlops_nb import pages


def test_a_page_forbids_fetches_and_escapes_its_title_not_its_body() -> None:
    html = pages.page("<script>alert(1)</script> & co", "<p class='x'>kept</p>")
    assert "default-src 'none'" in html and "<script" not in html
    assert "<title>&lt;script&gt;alert(1)&lt;/script&gt; &amp; co</title>" in html
    assert "<body><p class='x'>kept</p></body>" in html


def test_the_base_styles_apply_under_the_reports_root_class_only() -> None:
    css = pages.base_css(".mnb-eval")
    rules = [line for line in css.splitlines() if "{" in line]
    assert rules and all(line.startswith(".mnb-eval") for line in rules)
    assert "ROOT" not in css and ".mnb-eval td.num" in css
