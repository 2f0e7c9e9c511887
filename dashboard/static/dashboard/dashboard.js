// The dashboard's grid, kept up to date: the cards' state polled from /dashboard/state/, and
// each running scenario's newest annotated frame reloaded from /scenario/<id>/frame.jpg (the
// session opens both). User text is only ever set as textContent, never parsed as HTML.
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("dashboard-config").textContent);
  var grid = document.getElementById("grid");
  var template = document.getElementById("card-template");
  var conn = document.getElementById("conn");

  function text(el, value) {
    el.textContent = value === null || value === undefined || value === "" ? "\u2014" : String(value);
  }

  function cardOf(id) {
    var cards = grid.querySelectorAll("article.card");
    for (var i = 0; i < cards.length; i++) if (cards[i].dataset.id === id) return cards[i];
    return null;
  }

  // --- frames: a new request only once the previous one has answered -------------------------
  function wireFrame(card) {
    var img = card.querySelector(".frame-img");
    var none = card.querySelector(".no-frame");
    img.addEventListener("load", function () {
      card.dataset.frameBusy = "";
      img.classList.remove("missing");
      none.hidden = true;
      card.dataset.frameWidth = String(img.naturalWidth);
      card.dataset.framesLoaded = String(Number(card.dataset.framesLoaded || 0) + 1);
    });
    img.addEventListener("error", function () {
      // 404 until the runner has stored a frame; the last good one stays on screen.
      card.dataset.frameBusy = "";
      if (!card.dataset.frameWidth) none.hidden = false;
    });
  }
  function refreshFrame(card) {
    if (card.dataset.frameBusy) return;
    // An inactive scenario's frame does not change: load it once.
    if (card.dataset.status === "inactive" && card.dataset.framesLoaded !== "0") return;
    card.dataset.frameBusy = "1";
    card.querySelector(".frame-img").src = card.dataset.frameUrl + "?t=" + Date.now();
  }

  // --- cards ----------------------------------------------------------------------------------
  function newCard(s) {
    var card = template.content.firstElementChild.cloneNode(true);
    card.dataset.id = s.id;
    card.dataset.frameUrl = s.frame_url;
    card.querySelectorAll("form[data-action]").forEach(function (form) {
      form.action = s.actions[form.dataset.action];
    });
    wireFrame(card);
    return card;
  }
  function show(card, s) {
    card.dataset.status = s.status;
    text(card.querySelector(".name"), s.name || "(unnamed)");
    text(card.querySelector(".source"), s.source);
    text(card.querySelector(".sid"), s.id);
    text(card.querySelector(".status"), s.status);
    text(card.querySelector(".fps"), typeof s.fps === "number" ? s.fps.toFixed(1) : s.fps);
    text(card.querySelector(".frames"), s.frames_processed);
    text(card.querySelector(".restarts"), s.restarts);
    text(card.querySelector(".stop-reason"), s.stop_reason);
    card.querySelector(".error").textContent = s.error || "";
    var counts = card.querySelector(".counts");
    counts.replaceChildren();
    s.count_lines.forEach(function (line) {
      var li = document.createElement("li");
      li.textContent = line;
      counts.appendChild(li);
    });
    var inactive = s.status === "inactive";
    card.querySelector('form[data-action="stop"]').hidden = inactive;
    card.querySelector('form[data-action="start"]').hidden = !inactive;
  }
  function render(scenarios) {
    var seen = {};
    var previous = null;
    scenarios.forEach(function (s) {
      seen[s.id] = true;
      var card = cardOf(s.id);
      if (!card) card = newCard(s);
      show(card, s);
      // In the order given (newest first).
      var want = previous ? previous.nextElementSibling : grid.firstElementChild;
      if (want !== card) grid.insertBefore(card, want);
      previous = card;
    });
    grid.querySelectorAll("article.card").forEach(function (card) {
      if (!seen[card.dataset.id]) card.remove();
    });
    var empty = document.getElementById("empty");
    if (empty) empty.hidden = scenarios.length > 0;
    grid.dataset.updated = String(Number(grid.dataset.updated || 0) + 1);
  }

  var stateBusy = false;
  function refreshState() {
    if (stateBusy) return;
    stateBusy = true;
    fetch(cfg.state_url, { credentials: "same-origin", cache: "no-store", headers: { "Accept": "application/json" } })
      .then(function (r) {
        if (r.redirected || r.status === 401 || r.status === 403) {
          throw new Error("logged out; reload the page to log in again");
        }
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (data) { render(data.scenarios); conn.textContent = ""; })
      .catch(function (e) { conn.textContent = "cannot update: " + e.message; })
      .then(function () { stateBusy = false; });
  }
  function refreshFrames() {
    grid.querySelectorAll("article.card").forEach(refreshFrame);
  }

  // Deleting cannot be undone: ask first (a listener, as the page's CSP runs no inline handler).
  grid.addEventListener("submit", function (e) {
    var form = e.target;
    if (form.dataset.action !== "delete") return;
    var card = form.closest("article.card");
    var name = card.querySelector(".name").textContent;
    if (!window.confirm("Delete scenario \u201c" + name + "\u201d with its predictions and events?")) {
      e.preventDefault();
    }
  });

  grid.querySelectorAll("article.card").forEach(wireFrame);
  refreshFrames();
  refreshState();
  setInterval(refreshState, cfg.state_ms);
  setInterval(refreshFrames, cfg.frame_ms);
})();
