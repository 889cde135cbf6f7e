// Starts Swagger UI on /docs (web/docs.py): a file of our own, since the page's
// Content-Security-Policy runs no inline script. The config is a JSON block in the page.
(() => {
  "use strict";
  const config = JSON.parse(document.getElementById("docs-config").textContent);
  window.SwaggerUIBundle({
    url: config.url,
    dom_id: "#swagger-ui",
    deepLinking: true,
    // No call to the public validator service: the portal loads nothing from outside.
    validatorUrl: null,
  });
})();
