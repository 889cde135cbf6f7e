/* New-campaign form: offer only the runs the chosen scale grades (class2d runs for A–F,
   tilt series for 1–5). A file of its own: the page CSP runs no inline script. */
(() => {
  "use strict";
  const scale = document.getElementById("c-scale");
  if (!scale) return;
  function offer() {
    const kind = scale.value === "tilt_series" ? "tilt_series" : "class2d";
    document.querySelectorAll("#new-campaign label[data-kind]").forEach(label => {
      const show = label.dataset.kind === kind;
      label.hidden = !show;
      if (!show) label.querySelector("input").checked = false;
    });
  }
  scale.addEventListener("change", offer);
  offer();
})();
