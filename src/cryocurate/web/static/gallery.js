/* Class-average gallery: client-side filtering (kept / dropped / not graded / flagged / one
   grade) and sorting (class index, grade, resolution, particle count). Plain JS, no build.
   Missing values (no resolution, no grade) always sort last; hidden tiles keep their place. */
(() => {
  "use strict";
  for (const root of document.querySelectorAll("[data-gallery]")) {
    const list = root.querySelector("[data-gallery-list]");
    const keySel = root.querySelector("[data-sort-key]");
    const dirBtn = root.querySelector("[data-sort-dir]");
    const filterSel = root.querySelector("[data-filter]");
    const count = root.querySelector("[data-gallery-count]");
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
    function shows(el, filter) {
      if (filter === "all") return true;
      if (filter === "flagged") return el.dataset.flagged === "1";
      if (filter.startsWith("grade:")) return el.dataset.grade === filter.slice(6);
      return el.dataset.state === filter;  // kept, dropped, ungraded
    }
    function filter() {
      const chosen = filterSel ? filterSel.value : "all";
      let shown = 0;
      for (const el of list.children) {
        const on = shows(el, chosen);
        el.hidden = !on;
        if (on) shown += 1;
      }
      root.dataset.filter = chosen;
      if (count) count.textContent = `Showing ${shown} of ${list.children.length}`;
    }
    keySel.addEventListener("change", () => {
      // Particle counts read best largest-first; class index, grade (A first) and resolution
      // smallest-first.
      descending = keySel.value === "particle_count";
      sort();
    });
    dirBtn.addEventListener("click", () => { descending = !descending; sort(); });
    if (filterSel) filterSel.addEventListener("change", filter);
    root.dataset.sortedBy = "class_index:asc";
    root.dataset.filter = "all";
  }
})();
