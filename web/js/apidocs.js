// The API reference page: Swagger UI (installed from web-vendor/package-lock.json, never a CDN) renders the
// same OpenAPI document the API is deployed from. "Try it out" calls the regions of config.json.

async function start() {
  if (typeof window.SwaggerUIBundle !== "function") {
    document.getElementById("reference-missing").hidden = false;
    return;
  }
  let servers = [];
  try {
    const config = await (await fetch("/config.json", { cache: "no-store" })).json();
    servers = Object.entries(config.apiUrls || {}).map(([region, url]) => ({ url, description: region }));
  } catch {
    servers = [];
  }
  const ui = window.SwaggerUIBundle({
    // Beside the page's files wherever a deployment puts them (content-hashed folders included).
    url: new URL("../openapi.yaml", import.meta.url).href,
    dom_id: "#swagger-ui",
    deepLinking: true,
    onComplete: () => {
      // Offer the stack's own regions as servers ("Try it out" then calls them).
      if (servers.length) ui.specActions.updateJsonSpec({ ...ui.specSelectors.specJson().toJS(), servers });
    },
  });
}

// Module scripts run after deferred classic scripts, so the bundle is loaded by now.
start();
