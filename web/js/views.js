// What the person sees: one function per part of the page, no HTML strings (textContent only, so
// nothing the API returns can become markup).

const $ = (id) => document.getElementById(id);
const VIEWS = ["view-signed-out", "view-profile", "view-everyone"];

export function showView(id) {
  $("loading").hidden = true;
  for (const view of VIEWS) $(view).hidden = view !== id;
  const main = $("main");
  main.focus({ preventScroll: true });
}

export function setBusy(busy) {
  $("main").setAttribute("aria-busy", busy ? "true" : "false");
}

// A notice: kind is "error" or "info" (said in words too, never by colour alone).
export function notify(kind, text, action = null) {
  const box = $("notice");
  box.className = `notice ${kind}`;
  $("notice-text").textContent = `${kind === "error" ? "Problem: " : ""}${text}`;
  const button = $("notice-action");
  button.hidden = !action;
  if (action) {
    button.textContent = action.label;
    button.onclick = () => {
      clearNotice();
      action.run();
    };
  }
  box.hidden = false;
}

export function clearNotice() {
  $("notice").hidden = true;
  $("notice-text").textContent = "";
}

export function showPerson(person, canSignOut) {
  $("who").textContent = person ? `Signed in as ${person.username}${person.isAdmin ? " (administrator)" : ""}` : "";
  $("sign-out").hidden = !(person && canSignOut);
  $("nav-profile").hidden = !person;
  $("nav-everyone").hidden = !(person && person.isAdmin);
}

export function showRegions(regions, selected) {
  const picker = $("region-picker");
  picker.replaceChildren(
    ...regions.map((region) => {
      const option = document.createElement("option");
      option.value = region;
      option.textContent = region;
      option.selected = region === selected;
      return option;
    }),
  );
}

export function showServedRegion(region) {
  $("served-by").textContent = region ? `Answered by ${region}` : "";
}

function when(text) {
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? text : date.toLocaleString();
}

export function showProfile(user, person) {
  const form = $("profile-form");
  clearFieldErrors();
  $("profile-state").textContent = user
    ? "This is your profile. Edit it and save, or delete it."
    : "You have no profile yet. Create it here.";
  form.elements.name.value = user ? user.name : "";
  form.elements.email.value = user ? user.email : (person && person.email) || "";
  $("profile-save").textContent = user ? "Save changes" : "Create profile";
  $("profile-delete").hidden = !user;
  $("profile-details").hidden = !user;
  $("profile-id").textContent = user ? user.id : "";
  $("profile-created").textContent = user ? when(user.created_at) : "";
  $("profile-updated").textContent = user ? when(user.updated_at) : "";
}

export function profileInput() {
  const form = $("profile-form");
  return { name: form.elements.name.value.trim(), email: form.elements.email.value.trim() };
}

export function clearFieldErrors() {
  for (const name of ["name", "email"]) {
    $(`profile-${name}-error`).textContent = "";
    $(`profile-${name}`).removeAttribute("aria-invalid");
  }
}

// Field messages beside their inputs (and announced through aria-describedby).
export function showFieldErrors(fields) {
  clearFieldErrors();
  let first = null;
  for (const [name, message] of Object.entries(fields || {})) {
    const input = $(`profile-${name}`);
    if (!input) continue;
    input.setAttribute("aria-invalid", "true");
    $(`profile-${name}-error`).textContent = `${name === "name" ? "Name" : "E-mail"}: ${message}`;
    first = first || input;
  }
  if (first) first.focus();
}

export function showEveryone(items, pageNumber, hasNext) {
  const rows = items.map((user) => {
    const row = document.createElement("tr");
    for (const text of [user.name, user.email, when(user.created_at)]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    return row;
  });
  $("everyone-rows").replaceChildren(...rows);
  $("everyone-state").textContent = items.length
    ? `Page ${pageNumber}: ${items.length} user${items.length === 1 ? "" : "s"}${hasNext ? "" : " (last page)"}.`
    : "No users yet.";
  $("page-next").disabled = !hasNext;
  $("page-first").disabled = pageNumber === 1;
}
