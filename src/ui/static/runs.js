// Runs pages: expand a result row, show the fields of the chosen target kind and of the
// checked scorers, enable "Compare" once two runs are checked. Event delegation, so rows
// htmx swaps in work too.
(function () {
  "use strict";
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.expand");
    if (!button) return;
    const detail = document.getElementById(button.getAttribute("aria-controls"));
    const open = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", String(open));
    button.textContent = open ? "▾" : "▸";
    if (detail) detail.hidden = !open;
  });

  function showTargetFields() {
    const chosen = document.querySelector('input[name="targetType"]:checked');
    document.querySelectorAll(".target-fields").forEach((box) => {
      box.hidden = !chosen || box.dataset.kind !== chosen.value;
    });
  }
  function markScorers() {
    document.querySelectorAll("li.scorer").forEach((li) => {
      const box = li.querySelector('input[name="scorer"]');
      li.classList.toggle("on", Boolean(box && box.checked));
    });
  }
  function compareState() {
    const form = document.getElementById("compare-form");
    if (!form) return;
    const count = form.querySelectorAll('input[name="run"]:checked').length;
    const button = document.getElementById("compare-button");
    const hint = document.getElementById("compare-hint");
    if (button) button.disabled = count < 2;
    if (hint) hint.textContent = count < 2 ? "Select two or more runs." : count + " runs selected: the oldest is the baseline.";
  }
  document.addEventListener("change", (event) => {
    if (event.target.name === "targetType") showTargetFields();
    if (event.target.name === "scorer") markScorers();
    if (event.target.name === "run") compareState();
  });
  document.addEventListener("DOMContentLoaded", () => { showTargetFields(); markScorers(); compareState(); });

  // Reviewing with the keyboard on a run page: j / k make the next / previous result the
  // current one (opened, the others closed), p / f pass / fail it, g flags it. Keys typed
  // into a field are the field's.
  function setOpen(result, open) {
    const button = result.querySelector("button.expand");
    const detail = button && document.getElementById(button.getAttribute("aria-controls"));
    if (button) { button.setAttribute("aria-expanded", String(open)); button.textContent = open ? "▾" : "▸"; }
    if (detail) detail.hidden = !open;
  }
  function moveCurrent(step) {
    const results = Array.from(document.querySelectorAll(".results-table tbody.result"));
    if (!results.length) return;
    const at = results.findIndex((r) => r.classList.contains("current"));
    const next = at < 0 ? 0 : Math.min(results.length - 1, Math.max(0, at + step));
    results.forEach((r, k) => {
      r.classList.toggle("current", k === next);
      if (k === at && k !== next) setOpen(r, false);
    });
    setOpen(results[next], true);
    results[next].scrollIntoView({ block: "nearest" });
  }
  // A reviewed result comes back as the current one; if the reviewer has moved on
  // meanwhile (j before the answer came), the one moved to stays current.
  document.addEventListener("htmx:afterSwap", (event) => {
    const swapped = event.detail.elt;
    if (!swapped || !swapped.matches || !swapped.matches("tbody.result.current")) return;
    const others = Array.from(document.querySelectorAll(".results-table tbody.result.current")).filter((r) => r !== swapped);
    if (others.length) { swapped.classList.remove("current"); setOpen(swapped, false); }
  });
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest && event.target.closest("input, textarea, select, [contenteditable]")) return;
    if (!document.querySelector(".results-table")) return;
    const current = document.querySelector(".results-table tbody.result.current");
    // A result swapped in a moment ago may not be wired up by htmx yet (it does that as the
    // swap settles): wire it now, or the button would submit the form the plain way.
    const press = (selector) => {
      const button = current && current.querySelector(selector);
      if (!button) return;
      if (window.htmx) htmx.process(button.form);
      button.click();
    };
    if (event.key === "j") moveCurrent(1);
    else if (event.key === "k") moveCurrent(-1);
    else if (event.key === "p") press("button.review-pass");
    else if (event.key === "f") press("button.review-fail");
    else if (event.key === "g") press("button.review-flag");
    else return;
    event.preventDefault();
  });
})();
