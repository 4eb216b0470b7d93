// Modal dialogs on server-rendered pages, no framework:
// - a control with data-dialog-open="ID" opens <dialog id="ID"> with showModal() (the browser then traps focus,
//   moves it into the dialog, and closes it on Escape);
// - when the dialog closes, focus goes back to the control that opened it;
// - a dialog marked data-dialog-modal that the server sends already `open` (a refused form coming back with its
//   error), or that the URL's #fragment names, is reopened as a modal one.
// The listeners sit on the document, so controls that htmx swaps in later need no re-binding.
(() => {
  "use strict";
  const returnFocusTo = new WeakMap();  // dialog -> the element to focus when it closes

  function openModal(dialog, opener) {
    if (dialog.open) dialog.close();  // an in-place (non-modal) dialog must close before it can open modally
    returnFocusTo.set(dialog, opener || document.activeElement);
    dialog.showModal();
  }

  function openerOf(dialog) {
    return document.querySelector(`[data-dialog-open="${CSS.escape(dialog.id)}"]`);
  }

  document.addEventListener("click", (event) => {
    const opener = event.target instanceof Element && event.target.closest("[data-dialog-open]");
    if (!opener) return;
    const dialog = document.getElementById(opener.dataset.dialogOpen);
    if (!(dialog instanceof HTMLDialogElement)) return;
    event.preventDefault();
    openModal(dialog, opener);
  });

  // "close" does not bubble, hence the capture phase. The browser restores focus itself in most cases; doing it
  // here also covers a dialog that was reopened from the server's `open` state, which had no opener to return to.
  document.addEventListener("close", (event) => {
    const target = returnFocusTo.get(event.target);
    if (target instanceof HTMLElement && target.isConnected && document.activeElement !== target) target.focus();
  }, true);

  function reopenServerDialogs() {
    for (const dialog of document.querySelectorAll("dialog[data-dialog-modal][open]")) {
      openModal(dialog, openerOf(dialog));
      return;  // only one modal at a time
    }
    const named = location.hash.length > 1 && document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (named instanceof HTMLDialogElement && named.hasAttribute("data-dialog-modal")) {
      openModal(named, openerOf(named));
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", reopenServerDialogs);
  else reopenServerDialogs();
})();
