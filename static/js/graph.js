/* The dependency graph page: draw the mermaid diagram and wire the "Copy" buttons.
   Loaded with `defer` after the vendored mermaid.min.js, so both run once the page is parsed. */
(function () {
  "use strict";

  function startMermaid() {
    // Without the library (blocked or failed download) the <pre> keeps the source text, which still reads.
    if (!window.mermaid) return;
    window.mermaid.initialize({
      startOnLoad: true,
      securityLevel: "strict", // task titles come from plans: no HTML, no click handlers in labels
      // Keep the natural size: the container scrolls sideways on a phone instead of shrinking the text away.
      flowchart: { useMaxWidth: false },
    });
  }

  function selectText(element) {
    // The fallback when the clipboard is out of reach (plain http, old browser, permission refused):
    // open a closed <details> around it and select the text so Ctrl+C / long-press copy works.
    const details = element.closest("details");
    if (details) details.open = true;
    const range = document.createRange();
    range.selectNodeContents(element);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    element.focus();
  }

  function copyFrom(button) {
    const source = document.getElementById(button.dataset.copyTarget);
    const status = document.getElementById(button.dataset.copyStatus);
    if (!source) return;
    const say = function (message) { if (status) status.textContent = message; };
    const fallback = function () {
      selectText(source);
      say("Could not copy automatically: the text is selected, copy it with Ctrl+C (⌘C).");
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(source.textContent).then(function () { say("Copied."); }, fallback);
    } else {
      fallback();
    }
  }

  function wireCopyButtons() {
    document.querySelectorAll("button[data-copy-target]").forEach(function (button) {
      button.hidden = false; // hidden in the HTML: without this script the button could do nothing
      button.addEventListener("click", function () { copyFrom(button); });
    });
  }

  startMermaid();
  wireCopyButtons();
})();
