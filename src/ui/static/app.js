// The little behaviour the pages need beyond htmx: dialogs, confirmations, toasts.
(function () {
  "use strict";
  function toast(message, bad) {
    const box = document.getElementById("toast");
    if (!box) return;
    const note = document.createElement("div");
    note.className = "note" + (bad ? " bad" : "");
    note.textContent = message;
    box.appendChild(note);
    setTimeout(() => note.remove(), 6000);
  }
  window.evalledgerToast = toast;

  document.addEventListener("click", (event) => {
    const opener = event.target.closest("[data-open]");
    if (opener) {
      const dialog = document.getElementById(opener.dataset.open);
      if (dialog) dialog.showModal();
    }
    const closer = event.target.closest("[data-close]");
    if (closer) closer.closest("dialog")?.close();
  });

  // Every form that changes something carries the session's CSRF token (htmx requests send
  // it as a header, from the body's hx-headers).
  document.addEventListener("submit", (event) => {
    const form = event.target;
    const token = document.querySelector('meta[name="csrf-token"]');
    if (!token || (form.method || "get").toLowerCase() !== "post" || form.elements.csrf_token) return;
    const field = document.createElement("input");
    field.type = "hidden";
    field.name = "csrf_token";
    field.value = token.content;
    form.appendChild(field);
  }, true);

  // Forms that destroy something ask first (data-confirm holds the question).
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) event.preventDefault();
  }, true);

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("dialog[data-open-on-load]").forEach((d) => d.showModal());
    if (window.htmx) {
      // Pages answer bad input with 4xx and a fragment that says what is wrong: show it.
      htmx.config.responseHandling = [
        { code: "204", swap: false },
        { code: "[23]..", swap: true },
        { code: "4..", swap: true, error: false },
        { code: "...", swap: false, error: true },
      ];
    }
  });
  document.addEventListener("htmx:responseError", (event) => {
    toast("The server could not answer (" + event.detail.xhr.status + "). Try again in a moment.", true);
  });
  document.addEventListener("htmx:sendError", () => toast("The service is not reachable.", true));
  // -- dataset pages ------------------------------------------------------------------------

  // A dialog filled by htmx (e.g. the list page's "Duplicate") opens once its form arrives.
  document.addEventListener("htmx:afterSwap", (event) => {
    const target = event.detail.target;
    if (target && target.tagName === "DIALOG" && !target.open) target.showModal();
    updateSelection();
  });

  // A version picked in the version bar is shown at once.
  document.addEventListener("change", (event) => {
    const select = event.target.closest("select[data-autosubmit]");
    if (select && select.form) select.form.requestSubmit();
  });

  // The JSON editor says as one types whether each field is valid JSON (the server checks
  // again on save, together with the dataset's schemas).
  function checkJson(area) {
    const message = document.getElementById(area.getAttribute("aria-describedby"));
    const text = area.value.trim();
    let problem = "";
    if (text) {
      try { JSON.parse(text); } catch (error) { problem = "Not valid JSON: " + error.message; }
    } else if (area.name === "input") {
      problem = "Input is required";
    }
    area.setAttribute("aria-invalid", problem ? "true" : "false");
    if (message && message.hasAttribute("data-json-msg")) message.textContent = problem;
  }
  document.addEventListener("input", (event) => {
    const area = event.target.closest("textarea[data-json]");
    if (area) checkJson(area);
  });

  // Selections: the count, "select the whole page", "all matching", buttons needing one.
  function updateSelection() {
    const form = document.getElementById("selection");
    if (!form) return;
    const boxes = form.querySelectorAll('input[name="ids"]');
    const checked = form.querySelectorAll('input[name="ids"]:checked').length;
    const all = form.querySelector("[data-select-all-matching]");
    const count = all && all.checked ? Number(all.dataset.total) : checked;
    const label = form.querySelector("[data-selection-count]");
    if (label) label.textContent = count ? count.toLocaleString() + " selected" : "No items selected";
    form.querySelectorAll("[data-needs-selection]").forEach((button) => { button.disabled = count === 0; });
    const page = form.querySelector("[data-select-page]");
    if (page) page.checked = boxes.length > 0 && checked === boxes.length;
    boxes.forEach((box) => box.closest("tr")?.classList.toggle("checked", box.checked));
  }
  document.addEventListener("change", (event) => {
    const page = event.target.closest("[data-select-page]");
    if (page) page.form.querySelectorAll('input[name="ids"]').forEach((box) => { box.checked = page.checked; });
    const all = event.target.closest("[data-select-all-matching]");
    if (all && all.checked) all.form.querySelectorAll('input[name="ids"]').forEach((box) => { box.checked = true; });
    if (event.target.name === "ids" && !event.target.checked) {
      const matching = event.target.form.querySelector("[data-select-all-matching]");
      if (matching) matching.checked = false;
    }
    if (event.target.closest("#selection")) updateSelection();
  });
  document.addEventListener("DOMContentLoaded", updateSelection);

  // The row whose item the panel shows is highlighted.
  document.addEventListener("click", (event) => {
    const link = event.target.closest("[data-item-link]");
    if (!link) return;
    document.querySelectorAll("tr[data-item-row].selected").forEach((row) => row.classList.remove("selected"));
    link.closest("tr")?.classList.add("selected");
  });

  // Esc leaves the item editor without saving (dialogs close on Esc by themselves).
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    const editor = event.target.closest && event.target.closest("[data-escape-cancels]");
    if (editor) { event.preventDefault(); editor.querySelector("[data-cancel]")?.click(); }
  });

  // Uploads show how much of the file has been sent.
  document.addEventListener("htmx:xhr:progress", (event) => {
    const form = event.target.closest && event.target.closest("[data-upload-progress]");
    if (!form || !event.detail.lengthComputable) return;
    const percent = Math.round((event.detail.loaded / event.detail.total) * 100);
    const bar = form.querySelector("[data-progress-bar]");
    if (bar) bar.style.width = percent + "%";
    const text = form.querySelector("[data-progress-text]");
    if (text) text.textContent = percent < 100 ? "Uploading… " + percent + "%" : "Reading the file…";
  });
})();
