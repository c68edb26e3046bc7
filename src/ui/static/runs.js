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
})();
