// Swagger UI over the service's own OpenAPI document (a file, not an inline script: the pages'
// Content-Security-Policy runs scripts from this origin only).
window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui" });
