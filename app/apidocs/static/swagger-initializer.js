// Starts Swagger UI on the element that names the OpenAPI document (no inline script, so
// the page's Content-Security-Policy can forbid them).
window.addEventListener("load", function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.specUrl,
    domNode: root,
    deepLinking: true,
    validatorUrl: null,
    displayRequestDuration: true,
  });
});
