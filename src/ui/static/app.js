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
})();
