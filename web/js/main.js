// Start-up and navigation: read /config.json, finish a sign-in coming back to redirectPath, then show
// the page the hash names (#/profile, #/everyone) in the region the picker holds.

import { createAuth, SignInError } from "./auth.js";
import { ApiError, createApi } from "./api.js";
import * as views from "./views.js";

const REGION_KEY = "users.region";
const PAGE_SIZE = 10;
const REQUIRED_KEYS = ["apiUrls", "regions", "redirectPath"];

async function loadConfig() {
  let response;
  try {
    response = await fetch("/config.json", { cache: "no-store" });
  } catch {
    throw new Error("The app's configuration (/config.json) could not be loaded: check your connection and reload.");
  }
  if (!response.ok) throw new Error(`The app's configuration (/config.json) answered ${response.status}: reload, or ask whoever deployed it.`);
  const config = await response.json();
  const missing = REQUIRED_KEYS.filter((key) => !(key in config));
  if (missing.length || !config.regions.length) {
    throw new Error(`/config.json lacks ${missing.join(", ") || "regions"}: see docs/web-client.md for its keys.`);
  }
  return config;
}

function main(config) {
  const auth = createAuth(config);
  let region = localStorage.getItem(REGION_KEY);
  if (!config.regions.includes(region)) region = config.regions[0];
  const api = createApi(config, auth, () => region);
  const paging = { cursors: [null], index: 0 };

  const person = () => (auth.enabled ? auth.person() : { username: "anonymous", email: "", isAdmin: true });

  function setRegion(name) {
    region = name;
    localStorage.setItem(REGION_KEY, name);
    views.showRegions(config.regions, region);
  }

  function otherRegion() {
    return config.regions.find((name) => name !== region) || null;
  }

  function signedOut(message) {
    auth.forget();
    views.showPerson(null, false);
    views.showServedRegion(null);
    views.showView("view-signed-out");
    if (message) views.notify("error", message, { label: "Sign in", run: () => auth.signIn() });
  }

  function fail(error, retry) {
    if (!(error instanceof ApiError)) {
      views.notify("error", error.message || String(error));
      return;
    }
    if (error.servedRegion) views.showServedRegion(error.servedRegion);
    if (error.kind === "unauthorized") {
      signedOut(error.message);
    } else if (error.kind === "network" || error.kind === "unavailable") {
      const other = otherRegion();
      views.notify(
        "error",
        error.message,
        other ? { label: `Use ${other}`, run: () => { setRegion(other); retry(); } } : { label: "Try again", run: retry },
      );
    } else if (error.kind === "throttled") {
      views.notify("error", error.message, { label: "Try again", run: retry });
    } else {
      if (error.fields) views.showFieldErrors(error.fields);
      views.notify("error", error.message);
    }
  }

  async function showProfile() {
    views.showView("view-profile");
    try {
      const answer = await api.me();
      views.showServedRegion(answer.servedRegion);
      views.showProfile(answer.data, person());
    } catch (error) {
      if (error instanceof ApiError && error.kind === "not-found") {
        views.showServedRegion(error.servedRegion);
        views.showProfile(null, person());
        return;
      }
      fail(error, showProfile);
    }
  }

  async function showEveryone() {
    if (!person().isAdmin) {
      views.notify("error", "Only administrators can see everyone; here is your own profile.");
      history.replaceState(null, "", "#/profile");
      await showProfile();
      return;
    }
    views.showView("view-everyone");
    try {
      const answer = await api.listUsers(PAGE_SIZE, paging.cursors[paging.index]);
      views.showServedRegion(answer.servedRegion);
      const next = answer.data.next_cursor;
      paging.cursors[paging.index + 1] = next;
      views.showEveryone(answer.data.items, paging.index + 1, Boolean(next));
    } catch (error) {
      fail(error, showEveryone);
    }
  }

  // aria-busy on <main> while a view loads: assistive technology waits, and so do the browser tests.
  let loading = 0;
  async function busyWhile(load) {
    loading += 1;
    views.setBusy(true);
    try {
      await load();
    } finally {
      loading -= 1;
      views.setBusy(loading > 0);
    }
  }

  function render() {
    return busyWhile(async () => {
      views.showPerson(auth.enabled ? auth.person() : null, auth.enabled);
      if (auth.enabled && !auth.idToken()) {
        signedOut(null);
        return;
      }
      if (location.hash === "#/everyone") await showEveryone();
      else await showProfile();
    });
  }

  async function saveProfile(event) {
    event.preventDefault();
    views.clearNotice();
    views.clearFieldErrors();
    const input = views.profileInput();
    const missing = {};
    if (!input.name) missing.name = "enter your name";
    if (!input.email || !input.email.includes("@")) missing.email = "enter an e-mail address like alice@example.com";
    if (Object.keys(missing).length) {
      views.showFieldErrors(missing);
      return;
    }
    const creating = document.getElementById("profile-delete").hidden;
    try {
      const answer = creating ? await api.createMe(input) : await api.updateMe(input);
      views.showServedRegion(answer.servedRegion);
      views.showProfile(answer.data, person());
      views.notify("info", `Profile ${creating ? "created" : "saved"} in ${answer.servedRegion || region}.`);
    } catch (error) {
      fail(error, () => saveProfile(event));
    }
  }

  async function deleteProfile() {
    if (!window.confirm("Delete your profile? This cannot be undone.")) return;
    try {
      const answer = await api.deleteMe();
      views.showServedRegion(answer.servedRegion);
      views.showProfile(null, person());
      views.notify("info", "Your profile is deleted.");
    } catch (error) {
      fail(error, deleteProfile);
    }
  }

  views.showRegions(config.regions, region);
  document.getElementById("region-picker").addEventListener("change", (event) => {
    setRegion(event.target.value);
    views.clearNotice();
    render();
  });
  document.getElementById("sign-in").addEventListener("click", () => auth.signIn("#/profile"));
  document.getElementById("sign-out").addEventListener("click", () => auth.signOut());
  document.getElementById("notice-close").addEventListener("click", views.clearNotice);
  document.getElementById("profile-form").addEventListener("submit", saveProfile);
  document.getElementById("profile-delete").addEventListener("click", deleteProfile);
  document.getElementById("page-next").addEventListener("click", () => {
    paging.index += 1;
    busyWhile(showEveryone);
  });
  document.getElementById("page-first").addEventListener("click", () => {
    paging.index = 0;
    busyWhile(showEveryone);
  });
  window.addEventListener("hashchange", () => {
    paging.index = 0;
    render();
  });
  return { auth, render };
}

async function start() {
  let config;
  try {
    config = await loadConfig();
  } catch (error) {
    views.showView(null);
    views.notify("error", error.message);
    return;
  }
  const { auth, render } = main(config);
  if (auth.isCallback()) {
    try {
      const next = await auth.completeSignIn();
      history.replaceState(null, "", `/${next}`);
    } catch (error) {
      history.replaceState(null, "", "/");
      if (!(error instanceof SignInError)) throw error;
      views.notify("error", error.message, { label: "Sign in", run: () => auth.signIn("#/profile") });
    }
  }
  await render();
  document.body.dataset.ready = "true"; // for the browser tests: the first page is on screen
}

start();
