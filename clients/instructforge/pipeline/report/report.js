// Progressive enhancement only: the tree opens and closes with <details> without any script.
(() => {
  const tree = document.getElementById("tree");
  const controls = document.getElementById("tree-controls");
  if (!tree || !controls) return;
  controls.hidden = false;
  const all = () => tree.querySelectorAll("details");
  document.getElementById("expand-all").addEventListener("click", () => {
    for (const d of all()) d.open = true;
  });
  document.getElementById("collapse-all").addEventListener("click", () => {
    for (const d of all()) d.open = d.parentElement.parentElement === tree;  // the root stays open
  });
  const filter = document.getElementById("tree-filter");
  const status = document.getElementById("tree-filter-status");
  filter.addEventListener("input", () => {
    const query = filter.value.trim().toLowerCase();
    const items = tree.querySelectorAll("li");
    let shown = 0;
    for (const li of items) li.hidden = query !== "";
    if (query) {
      for (const li of items) {
        const name = li.querySelector(".name").textContent.toLowerCase();
        if (!name.includes(query)) continue;
        shown++;
        for (let up = li; up && up !== tree; up = up.parentElement) {
          if (up.tagName === "LI") up.hidden = false;
          if (up.tagName === "DETAILS" && up.parentElement !== li) up.open = true;
        }
      }
    }
    status.textContent = query ? `${shown} matching node${shown === 1 ? "" : "s"}` : "";
  });
})();
