/* Class-average gallery: client-side sorting by class index, resolution or particle count.
   Plain JS, no build. Missing values (no resolution) always sort last. */
(() => {
  "use strict";
  for (const root of document.querySelectorAll("[data-gallery]")) {
    const list = root.querySelector("[data-gallery-list]");
    const keySel = root.querySelector("[data-sort-key]");
    const dirBtn = root.querySelector("[data-sort-dir]");
    if (!list || !keySel || !dirBtn) continue;
    let descending = false;
    const value = (el, key) => {
      const raw = el.dataset[key];
      return raw === undefined || raw === "" ? null : Number(raw);
    };
    function sort() {
      const key = keySel.value;
      const items = [...list.children];
      items.sort((a, b) => {
        const va = value(a, key), vb = value(b, key);
        if (va === null && vb === null) return value(a, "class_index") - value(b, "class_index");
        if (va === null) return 1;
        if (vb === null) return -1;
        const d = descending ? vb - va : va - vb;
        return d !== 0 ? d : value(a, "class_index") - value(b, "class_index");
      });
      list.append(...items);
      root.dataset.sortedBy = key + (descending ? ":desc" : ":asc");
      dirBtn.textContent = descending ? "↓ Descending" : "↑ Ascending";
      dirBtn.setAttribute("aria-pressed", String(descending));
      dirBtn.setAttribute("aria-label",
        "Reverse the order (now " + (descending ? "descending" : "ascending") + ")");
    }
    keySel.addEventListener("change", () => {
      // Particle counts read best largest-first; class index and resolution smallest-first.
      descending = keySel.value === "particle_count";
      sort();
    });
    dirBtn.addEventListener("click", () => { descending = !descending; sort(); });
    root.dataset.sortedBy = "class_index:asc";
  }
})();
