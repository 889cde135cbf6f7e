// The review screen: a grade key (or its button) settles the item on screen and loads the
// next open one; "Recompute" recomputes the stored consensus. Both POST with the CSRF header.
const config = JSON.parse(document.getElementById("review-config").textContent);
const status = document.getElementById("review-status");
const base = `/campaigns/${config.campaign_id}`;
let busy = false;

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": config.csrf_token },
    body: JSON.stringify(body ?? {}),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || data.detail || `HTTP ${response.status}`);
  return data;
}

async function settle(grade) {
  if (busy || config.item_id == null) return;
  busy = true;
  status.textContent = `Saving ${grade}…`;
  try {
    const note = document.getElementById("note")?.value || null;
    await post(`${base}/review/${config.item_id}`, { grade, note });
    window.location.assign(`${base}/review`);
  } catch (error) {
    status.textContent = `Not saved: ${error.message}`;
    busy = false;
  }
}

document.getElementById("recompute")?.addEventListener("click", async () => {
  if (busy) return;
  busy = true;
  status.textContent = "Recomputing…";
  try {
    const summary = await post(`${base}/consensus`);
    status.textContent = `${summary.n_flagged} flagged, ${summary.n_open} open.`;
    window.location.assign(`${base}/review`);
  } catch (error) {
    status.textContent = `Failed: ${error.message}`;
    busy = false;
  }
});

for (const button of document.querySelectorAll("#levels [data-grade]")) {
  button.addEventListener("click", () => settle(button.dataset.grade));
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.target instanceof HTMLInputElement) return;
  const key = event.key.toUpperCase();
  let grade = config.keys.find((k) => k.toUpperCase() === key);
  if (!grade && /^[1-9]$/.test(key)) grade = config.keys[Number(key) - 1];
  if (grade) {
    event.preventDefault();
    settle(grade);
  }
});
