// PromptLine plugin site: client-side search and filters over the embedded JSON index.
// Plugin data is hostile: it is only ever set as textContent or attribute values, never as HTML.
"use strict";
(function () {
  const dataNode = document.getElementById("plugin-data");
  const results = document.getElementById("results");
  if (!dataNode || !results) return;            // a plugin or source page: nothing to do
  const plugins = JSON.parse(dataNode.textContent);
  const q = document.getElementById("q");
  const filters = {
    type: [document.getElementById("f-type"), (p) => p.types],
    keyword: [document.getElementById("f-keyword"), (p) => p.keywords],
    sandbox: [document.getElementById("f-sandbox"), (p) => [p.sandbox]],
    publisher: [document.getElementById("f-publisher"), (p) => [p.publisher]],
  };
  for (const [, [select, values]] of Object.entries(filters)) {
    const all = new Set();
    for (const p of plugins) for (const v of values(p)) if (v) all.add(v);
    for (const v of [...all].sort()) {
      const opt = document.createElement("option");
      opt.value = v;
      opt.textContent = v;
      select.appendChild(opt);
    }
    select.addEventListener("change", render);
  }
  q.addEventListener("input", render);
  const params = new URLSearchParams(location.search);
  if (params.get("q")) q.value = params.get("q");

  function matches(p) {
    const text = q.value.trim().toLowerCase();
    if (text && ![p.id, p.name, p.description, p.author, ...p.keywords].join(" ").toLowerCase().includes(text)) {
      return false;
    }
    for (const [, [select, values]] of Object.entries(filters)) {
      if (select.value && !values(p).includes(select.value)) return false;
    }
    return true;
  }

  function render() {
    results.replaceChildren();
    const shown = plugins.filter(matches);
    for (const p of shown) {
      const li = document.createElement("li");
      li.className = "plugin";
      const a = document.createElement("a");
      a.href = p.url;                                  // built by the site: plugins/<quoted id>/index.html
      a.textContent = p.name;
      a.className = "plugin-link";
      const version = document.createElement("span");
      version.className = "version";
      version.textContent = " " + p.version;
      const desc = document.createElement("p");
      desc.textContent = p.description;
      const meta = document.createElement("p");
      meta.className = "meta";
      meta.textContent = [p.id, p.sandbox && "sandbox " + p.sandbox, p.types.join(", "),
        "publisher " + p.publisher, p.compatible ? "compatible" : "not compatible"].filter(Boolean).join(" · ");
      li.append(a, version, desc, meta);
      results.appendChild(li);
    }
    results.dataset.count = String(shown.length);
    if (!shown.length) {
      const li = document.createElement("li");
      li.textContent = "no plugin matches";
      results.appendChild(li);
    }
  }
  render();
})();
