// ipymirror share --web: the page only applies the server's HTML fragments.
// It never interprets Jupyter messages; the fragments are rendered and
// sanitised on the server (ipymirror/core/html.py), and the page's CSP forbids
// inline scripts and loads from elsewhere. Read-only: the one thing it sends
// is a catch-up request carrying the viewer secret from the URL's fragment.
"use strict";
(() => {
  const secret = location.hash.slice(1);
  const main = document.getElementById("transcript");
  const status = document.getElementById("status");
  const live = document.getElementById("live");
  const conn = document.getElementById("conn");
  const MAX_CELLS = 500;   // cells kept in the page
  const MAX_NODES = 4000;  // pieces of one stream output kept
  let follow = true;       // stick to the end until the reader scrolls up
  let retry = 500;

  const byId = (id) => document.getElementById(id);
  const frag = (html) => {
    const t = document.createElement("template");
    t.innerHTML = html;
    return t.content;
  };
  const atEnd = () =>
    window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 48;
  const toEnd = () => window.scrollTo(0, document.documentElement.scrollHeight);

  window.addEventListener("scroll", () => {
    follow = atEnd();
    live.classList.toggle("show", !follow);
  }, { passive: true });
  live.addEventListener("click", () => {
    follow = true;
    live.classList.remove("show");
    toEnd();
  });

  const earlier = document.getElementById("earlier");
  let epoch = null;   // the relay run the page shows
  let arriving = null;

  const ops = {
    epoch: (id) => { arriving = id; },
    reset: (html) => {
      if (epoch !== null && arriving !== epoch) {
        // The relay restarted: keep what was shown, say what cannot be.
        const kept = document.createElement("div");
        kept.append(...main.childNodes);
        kept.querySelectorAll("[id]").forEach((e) => e.removeAttribute("id"));
        const note = document.createElement("pre");
        note.className = "notice";
        note.textContent = "» the relay restarted: what ran while it was down is not shown";
        earlier.append(kept, note);
      }
      epoch = arriving;
      main.replaceChildren(frag(html));
    },
    cell: (id, html) => {
      const old = byId(id);
      if (old) old.replaceWith(frag(html)); else main.append(frag(html));
      while (main.children.length > MAX_CELLS) main.firstElementChild.remove();
    },
    outs: (id, html) => byId(id + "-outs")?.replaceChildren(frag(html)),
    add: (id, html) => byId(id + "-outs")?.append(frag(html)),
    out: (id, html) => byId(id)?.replaceWith(frag(html)),
    app: (id, html) => {
      const done = byId(id)?.querySelector(".d");
      if (!done) return;
      done.append(frag(html));
      if (done.childNodes.length > MAX_NODES) {
        const drop = done.childNodes.length - MAX_NODES / 2;
        for (let i = 0; i < drop; i++) done.firstChild.remove();
        if (!done.previousElementSibling) {
          const note = document.createElement("span");
          note.className = "note";
          note.textContent = "… earlier output not kept\n";
          done.before(note);
        }
      }
    },
    tail: (id, html) => byId(id)?.querySelector(".t")?.replaceChildren(frag(html)),
    note: (html) => main.append(frag(html)),
    status: (html) => status.replaceChildren(frag(html)),
  };

  function apply(list) {
    for (const [op, ...args] of list) {
      const f = ops[op];
      if (f) f(...args);
    }
    if (follow) toEnd();
    window.ipymirrorApplied = (window.ipymirrorApplied || 0) + 1;  // tests wait on this
  }

  function connect() {
    if (!secret) {
      conn.textContent = "this link has no viewer key (copy the whole URL)";
      return;
    }
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/ws`);
    ws.onopen = () => {
      ws.send(JSON.stringify({ v: 1, type: "catchup", secret }));
    };
    ws.onmessage = (ev) => {
      retry = 500;
      conn.textContent = "";
      conn.className = "ok";
      apply(JSON.parse(ev.data));
    };
    ws.onclose = (ev) => {
      if (ev.code === 4403) {
        conn.textContent = "this link is not valid any more: ask for a new one";
        return;
      }
      conn.textContent = "reconnecting…";
      setTimeout(connect, retry * (0.5 + Math.random()));  // a class does not come back at once
      retry = Math.min(retry * 2, 10000);
    };
  }
  connect();
})();
