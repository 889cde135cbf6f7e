/* Run page: the Download Run dialog (which tomogram file the link fetches) and the
   annotations' info panels. A file of its own: the page CSP runs no inline script. */
(() => {
  "use strict";
  const dialog = document.getElementById("download-run");
  const opener = document.getElementById("open-download");
  if (dialog && opener) {
    opener.addEventListener("click", () => dialog.showModal());
    dialog.addEventListener("close", () => opener.focus());
    const sel = document.getElementById("dl-tomogram");
    const link = document.getElementById("dl-tomogram-link");
    function updateLink() {
      if (!sel || !link) return;
      const opt = sel.selectedOptions[0];
      const fmt = dialog.querySelector("input[name=format]:checked").value;
      link.href = fmt === "mrc" && opt.dataset.mrc ? opt.dataset.mrc : opt.dataset.zarr;
    }
    if (sel) {
      sel.addEventListener("change", updateLink);
      dialog.querySelectorAll("input[name=format]").forEach(r => r.addEventListener("change", updateLink));
      updateLink();
    }
  }
  document.querySelectorAll(".info-button").forEach(btn => {
    btn.addEventListener("click", () => {
      const row = document.getElementById(btn.getAttribute("aria-controls"));
      const open = btn.getAttribute("aria-expanded") !== "true";
      btn.setAttribute("aria-expanded", String(open));
      row.hidden = !open;
    });
  });
})();
