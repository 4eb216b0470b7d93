// Polling that waits for the person: an element that polls (hx-trigger="every Ns") and names a selector in
// data-poll-hold skips its request while something matches it — a form being typed in, an open dialog — so a
// half-typed value is not replaced under the cursor. (Done here, not in an hx-trigger filter: filters are
// evaluated as code, which the content security policy does not allow.)
(() => {
  "use strict";
  document.addEventListener("htmx:beforeRequest", (event) => {
    const hold = event.detail.elt.getAttribute("data-poll-hold");
    if (hold && document.querySelector(hold)) event.preventDefault();
  });
})();
