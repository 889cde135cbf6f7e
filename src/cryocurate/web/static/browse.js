// Browse Datasets: apply a filter as soon as it changes (the form is a plain GET form and works
// without this), and open/close the download dialogs. No framework, no build step.
(function () {
  "use strict";
  var form = document.getElementById("browse-form");
  if (form) {
    form.addEventListener("change", function (event) {
      var t = event.target;
      // Text and number inputs apply on Enter or on leaving them (the change event).
      if (t && (t.type === "checkbox" || t.tagName === "SELECT" || t.type === "number" ||
                t.type === "text")) {
        // Drop empty fields so shared URLs stay short.
        submitClean(form);
      }
    });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      submitClean(form);
    });
  }
  function submitClean(f) {
    var params = new URLSearchParams();
    new FormData(f).forEach(function (value, key) {
      if (String(value).trim() !== "") params.append(key, value);
    });
    var qs = params.toString();
    window.location.assign("/" + (qs ? "?" + qs : ""));
  }
  document.querySelectorAll("[data-open-dialog]").forEach(function (button) {
    var dialog = document.getElementById(button.getAttribute("data-open-dialog"));
    if (!dialog || typeof dialog.showModal !== "function") return;
    button.addEventListener("click", function (event) {
      event.preventDefault();
      dialog.showModal();
    });
  });
  document.querySelectorAll("dialog [data-close-dialog]").forEach(function (button) {
    button.addEventListener("click", function () { button.closest("dialog").close(); });
  });
})();
