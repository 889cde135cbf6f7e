/* Behaviour every page may use, declared in the markup with data- attributes instead of
   inline on…= handlers, which the page Content-Security-Policy does not run:

   <img data-hide-broken>         hidden (its box kept) when it fails to load
   <select data-autosubmit>       submits its form when changed
   <form data-no-submit>          never submits (controls driven by script)
   <input data-select-on-focus>   selects its text when focused (a link to copy)

   Deferred (a blocking script in <head> would hold back the page's first paint): images that
   failed before it ran are found by their state, later failures by the listener. */
(() => {
  "use strict";
  const hide = (img) => { img.style.visibility = "hidden"; };
  // "error" does not bubble: listen in the capture phase, for images added later too.
  document.addEventListener("error", (event) => {
    const el = event.target;
    if (el instanceof HTMLImageElement && el.hasAttribute("data-hide-broken")) hide(el);
  }, true);
  document.addEventListener("change", (event) => {
    const el = event.target;
    if (el instanceof HTMLSelectElement && el.hasAttribute("data-autosubmit") && el.form) {
      el.form.requestSubmit();
    }
  });
  document.addEventListener("submit", (event) => {
    if (event.target instanceof HTMLFormElement && event.target.hasAttribute("data-no-submit")) {
      event.preventDefault();
    }
  }, true);
  document.addEventListener("focusin", (event) => {
    const el = event.target;
    if (el instanceof HTMLInputElement && el.hasAttribute("data-select-on-focus")) el.select();
  });
  // The document is parsed when a deferred script runs: images that already failed.
  document.querySelectorAll("img[data-hide-broken]").forEach((img) => {
    if (img.complete && img.naturalWidth === 0 && img.getAttribute("src")) hide(img);
  });
})();
